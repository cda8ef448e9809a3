//! Web search the gateway runs itself, for clients whose hosted search tool (Claude Code's
//! WebSearch, …) their source cannot run (`docs/web-search.md`):
//!
//! - this file: the server config's `web_search:` section and the [`Searcher`] built from it
//!   (egress: the query goes to the configured backend only; timeout; result cap; snippets
//!   cut to size). Neither the query nor the backend's key is ever logged.
//! - [`Backend`]: one trait per search API: [`searxng`] (self-hosted, no key), [`tavily`],
//!   [`brave`].
//! - [`emulate`]: the loop that gives the provider a `web_search` function tool, runs the
//!   searches it asks for and builds the client's native answer.
//! - [`native`]: sources that search themselves behind another protocol (OpenRouter,
//!   DashScope, OpenAI/xAI Responses): asking them, reading what they found.
//!
//! The wire shapes (which requests ask for search, the client's answer) are in
//! `crate::protocol::web_search`.

pub mod brave;
pub mod emulate;
pub mod native;
pub mod searxng;
pub mod tavily;

pub use crate::protocol::web_search::Hit;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest snippet kept per result (characters); the model reads every one.
pub const MAX_SNIPPET_CHARS: usize = 1_500;
/// The most of a backend's answer read (bytes).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Results per search when the config says nothing.
pub const DEFAULT_MAX_RESULTS: usize = 5;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a streaming client hears from the proxy while the provider is busy.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The search APIs FlexiProxy can call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A SearXNG instance's JSON API (`GET /search?q=…&format=json`).
    #[default]
    Searxng,
    /// Tavily's search API (`POST https://api.tavily.com/search`, a key).
    Tavily,
    /// Brave's Search API (`GET https://api.search.brave.com/res/v1/web/search`, a key).
    Brave,
}

impl BackendKind {
    /// Where the backend is when `url` is not given (SearXNG has no public default).
    fn default_url(self) -> Option<&'static str> {
        match self {
            BackendKind::Searxng => None,
            BackendKind::Tavily => Some("https://api.tavily.com"),
            BackendKind::Brave => Some("https://api.search.brave.com"),
        }
    }

    fn needs_key(self) -> bool {
        !matches!(self, BackendKind::Searxng)
    }
}

/// An adapter's `web_search:` — who runs a client's hosted search tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebSearchMode {
    /// The source's own search where it has one (a same-protocol source gets the tool as
    /// sent), else the gateway's backend when configured, else the tool is dropped.
    #[default]
    Auto,
    /// Always the gateway's backend (when configured), same-protocol sources included.
    Gateway,
    /// Never the gateway: the source's own search, or none.
    Native,
    /// Never the gateway either (a translated source gets no search tool).
    Off,
}

/// `web_search:` in the server config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSearchFile {
    /// `searxng` (default), `tavily` or `brave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// The backend's base URL (SearXNG: where it serves `/search`; required). Tavily and
    /// Brave default to their public APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The backend's API key (Tavily, Brave); `${VAR}` reads the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Results per search (default 5, at most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<usize>,
    /// The longest one search may take (default 10s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// How often a streaming client gets a keep-alive while a provider call of the loop is
    /// under way (default 10s); a first call that long starts the client's stream.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_alive: Option<Duration>,
}

/// The validated `web_search:` section.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSearchConfig {
    pub backend: BackendKind,
    /// Base URL without a trailing slash.
    pub url: String,
    pub api_key: Option<String>,
    pub max_results: usize,
    pub timeout: Duration,
    pub keep_alive: Duration,
}

/// Never prints the key.
impl std::fmt::Debug for WebSearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSearchConfig")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("max_results", &self.max_results)
            .field("timeout", &self.timeout)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

impl WebSearchFile {
    /// Checks the section; the message names the field. `${VAR}` in `api_key` is read from
    /// the environment.
    pub fn validate(&self) -> Result<WebSearchConfig, String> {
        self.validate_with(&|var| std::env::var(var).ok())
    }

    pub fn validate_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebSearchConfig, String> {
        let backend = self.backend.unwrap_or_default();
        let url = match (&self.url, backend.default_url()) {
            (Some(url), _) => url.trim().trim_end_matches('/').to_owned(),
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(
                    "web_search.url: the SearXNG base URL is required (e.g. http://127.0.0.1:8888)"
                        .into(),
                );
            }
        };
        let api_key = match &self.api_key {
            Some(k) => Some(
                crate::config::adapter::expand_env(k, env)
                    .map_err(|e| format!("web_search.api_key: {e}"))?,
            ),
            None => None,
        }
        .filter(|k| !k.is_empty());
        if backend.needs_key() && api_key.is_none() {
            let name = match backend {
                BackendKind::Searxng => "searxng",
                BackendKind::Tavily => "tavily",
                BackendKind::Brave => "brave",
            };
            return Err(format!(
                "web_search.api_key: the {name} backend needs its API key"
            ));
        }
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&url).is_err() {
            return Err(format!(
                "web_search.url: `{url}` is not an http(s) URL (SearXNG's base URL, e.g. http://127.0.0.1:8888)"
            ));
        }
        let max_results = self.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        if !(1..=20).contains(&max_results) {
            return Err("web_search.max_results must be between 1 and 20".into());
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err("web_search.timeout must be more than 0".into());
        }
        let keep_alive = self
            .keep_alive
            .unwrap_or(DEFAULT_KEEP_ALIVE)
            .max(Duration::from_millis(10));
        Ok(WebSearchConfig {
            backend,
            url,
            api_key,
            max_results,
            timeout,
            keep_alive,
        })
    }
}

/// Why a search gave nothing; its Anthropic `error_code` is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// The backend failed, timed out or answered something unreadable (the detail is for
    /// the log: never the query or a key).
    Unavailable(String),
    /// The backend limited us (429).
    TooManyRequests,
    /// The backend refused the query.
    InvalidInput,
}

impl SearchError {
    pub fn error_code(&self) -> &'static str {
        match self {
            SearchError::Unavailable(_) => "unavailable",
            SearchError::TooManyRequests => "too_many_requests",
            SearchError::InvalidInput => "invalid_input",
        }
    }
}

/// A search API. Another backend is one file implementing this.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Up to `max_results` results for `query`, best first.
    async fn search(&self, query: &str, max_results: usize) -> Result<Vec<Hit>, SearchError>;
}

/// The configured backend with its limits applied.
pub struct Searcher {
    backend: Box<dyn Backend>,
    max_results: usize,
    timeout: Duration,
    keep_alive: Duration,
}

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("max_results", &self.max_results)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Searcher {
    pub fn new(config: &WebSearchConfig) -> Result<Searcher, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // The query goes to the configured backend only, never where it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("flexiproxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("web_search: cannot build the HTTP client: {e}"))?;
        let backend: Box<dyn Backend> = match config.backend {
            BackendKind::Searxng => Box::new(searxng::Searxng::new(http, &config.url)),
            BackendKind::Tavily => Box::new(tavily::Tavily::new(
                http,
                &config.url,
                config.api_key.as_deref().unwrap_or_default(),
            )),
            BackendKind::Brave => Box::new(brave::Brave::new(
                http,
                &config.url,
                config.api_key.as_deref().unwrap_or_default(),
            )),
        };
        Ok(Searcher {
            backend,
            max_results: config.max_results,
            timeout: config.timeout,
            keep_alive: config.keep_alive,
        })
    }

    /// A searcher over any backend (tests).
    pub fn with_backend(backend: Box<dyn Backend>, max_results: usize, timeout: Duration) -> Self {
        Searcher {
            backend,
            max_results,
            timeout,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// How often a streaming client hears from the proxy during a provider call.
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// One search within the timeout: results with an http(s) URL that `keep` accepts, at
    /// most `max_results`, snippets cut to [`MAX_SNIPPET_CHARS`].
    pub async fn search(
        &self,
        query: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<Hit>, SearchError> {
        // Asked for a few more than kept: the client's domain filters may drop some.
        let ask = (self.max_results * 2).min(20);
        let hits = tokio::time::timeout(self.timeout, self.backend.search(query, ask))
            .await
            .map_err(|_| SearchError::Unavailable("the search backend timed out".into()))??;
        Ok(hits
            .into_iter()
            .filter(|h| h.url.starts_with("https://") || h.url.starts_with("http://"))
            .filter(|h| keep(&h.url))
            .take(self.max_results)
            .map(|mut h| {
                h.snippet = clean_text(&h.snippet, MAX_SNIPPET_CHARS);
                h.title = clean_text(&h.title, 300);
                h
            })
            .collect())
    }
}

/// Text from a backend made safe to show: markup tags and control characters out,
/// whitespace collapsed, at most `max` characters.
pub fn clean_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut in_tag = false;
    let mut space = false;
    let mut count = 0;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() || c.is_control() => space = !out.is_empty(),
            c => {
                if count + 1 + usize::from(space) > max {
                    out.push('…');
                    break;
                }
                if space {
                    out.push(' ');
                    space = false;
                    count += 1;
                }
                out.push(c);
                count += 1;
            }
        }
    }
    out
}

/// A JSON answer read within [`MAX_ANSWER_BYTES`]; errors name the status, never the URL
/// (it holds the query).
pub(crate) async fn read_json(
    response: reqwest::Response,
) -> Result<serde_json::Value, SearchError> {
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        429 => return Err(SearchError::TooManyRequests),
        400 | 422 => return Err(SearchError::InvalidInput),
        _ => {
            return Err(SearchError::Unavailable(format!(
                "the search backend answered {status}"
            )));
        }
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(SearchError::Unavailable(
                "the search backend's answer is too large".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| {
        SearchError::Unavailable(format!("the search backend's answer is not JSON: {e}"))
    })
}

/// A transport error without its URL (which carries the query).
pub(crate) fn transport(e: reqwest::Error) -> SearchError {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot be reached".to_owned()
    } else {
        format!("failed: {e}")
    };
    SearchError::Unavailable(format!("the search backend {what}"))
}

/// A string field of a JSON object, or "".
pub(crate) fn str_field<'v>(value: &'v serde_json::Value, field: &str) -> &'v str {
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_and_never_prints_the_key() {
        let file = WebSearchFile {
            url: Some("http://127.0.0.1:8888/".into()),
            api_key: Some("tvly-secret".into()),
            ..WebSearchFile::default()
        };
        let c = file.validate().unwrap();
        assert_eq!(c.url, "http://127.0.0.1:8888");
        assert_eq!(c.max_results, DEFAULT_MAX_RESULTS);
        assert!(!format!("{c:?}").contains("tvly-secret"));
        for bad in ["", "ftp://x", "127.0.0.1:8888"] {
            let file = WebSearchFile {
                url: Some(bad.into()),
                ..WebSearchFile::default()
            };
            assert!(file.validate().is_err(), "{bad}");
        }
        let file = WebSearchFile {
            url: Some("http://x".into()),
            max_results: Some(0),
            ..WebSearchFile::default()
        };
        assert!(file.validate().is_err());
        assert!(
            WebSearchFile::default().validate().is_err(),
            "SearXNG needs its URL"
        );
        // Tavily and Brave: their public API by default, a key required, ${VAR} expanded.
        let tavily = WebSearchFile {
            backend: Some(BackendKind::Tavily),
            api_key: Some("${TAVILY_KEY}".into()),
            ..WebSearchFile::default()
        };
        let env = |v: &str| (v == "TAVILY_KEY").then(|| "tvly-1".to_owned());
        let c = tavily.validate_with(&env).unwrap();
        assert_eq!(c.url, "https://api.tavily.com");
        assert_eq!(c.api_key.as_deref(), Some("tvly-1"));
        let e = tavily.validate_with(&|_| None).unwrap_err();
        assert!(e.contains("TAVILY_KEY"), "{e}");
        let brave = WebSearchFile {
            backend: Some(BackendKind::Brave),
            ..WebSearchFile::default()
        };
        assert!(
            brave
                .validate_with(&|_| None)
                .unwrap_err()
                .contains("api_key")
        );
    }

    #[test]
    fn text_is_cleaned_and_cut() {
        assert_eq!(
            clean_text("  <strong>Rust</strong>\n\t1.90  released ", 100),
            "Rust 1.90 released"
        );
        assert_eq!(clean_text("abcdef", 3), "abc…");
        assert_eq!(clean_text("\u{0}\u{7}", 3), "");
    }
}

#[cfg(test)]
mod properties {
    //! Whatever a backend (or a provider searching natively) answers — missing fields, wrong
    //! types, huge, not UTF-8 — reading it never panics and never yields more than asked.
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
            Just(Value::String("https://a.example/x".into())),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("results".to_owned()),
                            Just("web".to_owned()),
                            Just("url".to_owned()),
                            Just("title".to_owned()),
                            Just("content".to_owned()),
                            Just("description".to_owned()),
                            Just("publishedDate".to_owned()),
                            Just("page_age".to_owned()),
                            Just("annotations".to_owned()),
                            Just("url_citation".to_owned()),
                            Just("search_results".to_owned()),
                            Just("sources".to_owned()),
                            "[a-z]{1,8}",
                        ],
                        inner
                    ),
                    0..8
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_answer_reads_without_panic(answer in json(), max in 0usize..30) {
            for hits in [
                searxng::hits(&answer, max),
                tavily::hits(&answer, max),
                brave::hits(&answer, max),
            ] {
                prop_assert!(hits.len() <= max);
                prop_assert!(hits.iter().all(|h| !h.url.is_empty()));
            }
        }

        #[test]
        fn any_native_answer_reads_without_panic(answer in json()) {
            use native::Native;
            let hosted = crate::protocol::web_search::HostedSearch {
                client: crate::protocol::pair::Wire::AnthropicMessages,
                max_uses: 2,
                allowed_domains: vec![],
                blocked_domains: vec![],
            };
            // The answer as each source's own shape would hold it, and as it is.
            let shapes = [
                serde_json::json!({"choices": [{"message": {"annotations": [answer.clone()]}}]}),
                serde_json::json!({"search_info": {"search_results": [answer.clone()]}}),
                serde_json::json!({"output": [answer.clone()]}),
                answer,
            ];
            for (shape, native) in shapes.iter().zip([Native::OpenRouter, Native::DashScope, Native::Responses, Native::Responses]) {
                for (_, hits) in native::found(native, shape.to_string().as_bytes(), "q", &hosted) {
                    prop_assert!(hits.iter().all(|h| h.url.starts_with("http")));
                }
            }
        }

        #[test]
        fn any_bytes_are_refused_or_read(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = searxng::hits(&v, 5);
            }
        }

        #[test]
        fn cleaned_text_is_bounded(text in "\\PC{0,300}|<[a-z]{1,5}>.{0,50}", max in 0usize..100) {
            let clean = clean_text(&text, max);
            prop_assert!(clean.chars().count() <= max + 1);
            prop_assert!(!clean.chars().any(char::is_control));
        }

        #[test]
        fn any_provider_answer_is_read_or_refused(body in prop::collection::vec(any::<u8>(), 0..256)) {
            use crate::protocol::pair::{Pair, Wire};
            for source in [Wire::OpenAiChat, Wire::Responses, Wire::Gemini, Wire::AnthropicMessages] {
                let hosted = crate::protocol::web_search::HostedSearch {
                    client: Wire::AnthropicMessages,
                    max_uses: 2,
                    allowed_domains: vec![],
                    blocked_domains: vec![],
                };
                let pair = Pair { client: Wire::AnthropicMessages, source };
                let mut l = emulate::SearchLoop::new(pair, hosted, "r");
                let _ = l.answer(&body, &Default::default());
            }
        }
    }
}
