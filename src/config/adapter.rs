//! Adapter files (`<adapters_dir>/<name>.yaml`): the public file format and its validation
//! into the [`Adapter`] the proxy uses. Users and scripts write these files by hand, so the
//! format only grows; unknown keys are errors (a typo must not silently do nothing), and every
//! error names the file, line and column.

use super::keys::{KeyHash, Secret, parse_hash_hex};
use super::presets;
use super::{ConfigError, line_of};
use crate::protocol::openai_chat::dialect::{Dialect, MaxTokensField, ReasoningStyle};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------------------------------------
// File format

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The panel user this adapter belongs to; none for the operator's own adapters (visible
    /// to admins only). A non-admin owner's source may not be a private address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub source: SourceFile,
    /// Client-visible model names for `GET /v1/models` (defaults to the mapped patterns that
    /// are plain names, or a few Claude names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AdapterLimitsFile>,
    /// Checked in order before `source`; the first whose `when` holds serves the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteFile>,
    /// Sources and keys one request may try before it gives up (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Who runs a client's hosted web search: `auto` (default), `gateway`, `native`, `off`
    /// (docs/web-search.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<crate::websearch::WebSearchMode>,
    /// Keep the last exchanges in memory for the owner to look at (docs/inspector.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<InspectFile>,
}

/// `inspect: { keep: N, header: bool }` (off without it).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InspectFile {
    /// Exchanges kept (1 to 1000).
    pub keep: usize,
    /// Send `x-flexiproxy-notes: <count>` on responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
}

/// The validated `inspect:` of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspect {
    pub keep: usize,
    pub header: bool,
}

/// The most exchanges `inspect.keep` may ask for.
pub const MAX_INSPECT_KEEP: usize = 1000;

/// One route: conditions on the request, and the complete source that serves it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// How logs and metrics name the route (else its index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<crate::routing::RouteWhen>,
    pub source: SourceFile,
}

/// A key of a pool: the key (or `${VAR}`), or `{ key, label }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PoolKeyFile {
    Plain(String),
    Labeled {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
}

impl PoolKeyFile {
    pub fn parts(&self) -> (&str, Option<&str>) {
        match self {
            PoolKeyFile::Plain(k) => (k, None),
            PoolKeyFile::Labeled { key, label } => (key, label.as_deref()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SourceProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// One provider key; or `api_keys`, a pool.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<PoolKeyFile>,
    /// How a pool spreads requests: `sticky` (default), `least_busy`, `round_robin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<crate::routing::Balance>,
    /// Required, except in a fallback, which then uses its primary's model and `model_map`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_map: Vec<ModelRuleFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<OptionsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsFile>,
    /// Further sources tried in order when this one fails before any byte reached the client:
    /// complete sources (any protocol, preset, options, keys); what a fallback leaves out
    /// (protocol for an unknown host, model, options, timeouts) it takes from its primary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<SourceFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceProtocol {
    /// OpenAI Chat Completions (`<base_url>/chat/completions`).
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages (`<base_url>/v1/messages`).
    Anthropic,
    /// OpenAI Responses (`<base_url>/responses`): OpenAI, xAI, Azure OpenAI.
    Responses,
    /// Google Gemini (`<base_url>/models/{model}:generateContent`), for Gemini clients.
    Gemini,
}

impl SourceProtocol {
    /// The name used in files, the CLI and the API.
    pub fn name(self) -> &'static str {
        match self {
            SourceProtocol::OpenAi => "openai",
            SourceProtocol::Anthropic => "anthropic",
            SourceProtocol::Responses => "responses",
            SourceProtocol::Gemini => "gemini",
        }
    }

    pub fn parse(name: &str) -> Option<SourceProtocol> {
        [
            SourceProtocol::OpenAi,
            SourceProtocol::Anthropic,
            SourceProtocol::Responses,
            SourceProtocol::Gemini,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRuleFile {
    #[serde(rename = "match")]
    pub pattern: String,
    pub model: String,
}

/// Per-adapter provider options; each overrides the preset's value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsFile {
    /// Send `stream_options: {include_usage: true}` on streaming requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_usage: Option<bool>,
    /// `max_tokens` or `max_completion_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensFieldFile>,
    /// Clamp the client's `max_tokens` to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_limit: Option<u64>,
    /// Forward `top_k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<bool>,
    /// `effort` (reasoning_effort), `deepseek`, `qwen` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningFile>,
    /// Mid-conversation system messages: `system` (as is) or `user` (as user text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_messages: Option<SystemMessagesFile>,
    /// Send earlier thinking back as `reasoning_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_reasoning: Option<bool>,
    /// Structured output as `json_schema` (else `json_object`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<bool>,
    /// Anthropic sources: auth header (`x-api-key` or `bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<AuthHeader>,
    /// Anthropic sources: drop the client's `anthropic-beta` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_anthropic_beta: Option<bool>,
    /// Whether the model reads images and documents: `true`, `false` (they are replaced by a
    /// short note) or `refuse` (such requests get a 400 before anything is sent). Presets
    /// know their text-only models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ImagesFile {
    Reads(bool),
    Mode(ImagesMode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagesMode {
    Refuse,
}

/// What a source does with image and document input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImagePolicy {
    /// The model reads them.
    #[default]
    Read,
    /// Text only: each is replaced by a short placeholder before the request goes out.
    Omit,
    /// Text only, and requests carrying them are refused with a 400.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensFieldFile {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningFile {
    Effort,
    Deepseek,
    Qwen,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemMessagesFile {
    System,
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthHeader {
    #[default]
    XApiKey,
    Bearer,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_byte: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub total: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterLimitsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_requests: Option<u32>,
    /// Apply the limits to each key separately (default) or to the adapter as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_key: Option<bool>,
    /// Tokens (input + output) per UTC day; each request reserves its input estimate plus its
    /// `max_tokens` up front and settles to what the provider reported when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC calendar month, reserved and settled the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
    /// Web searches the gateway runs per UTC day (docs/web-search.md); a search past it is
    /// answered as the client's search error (`too_many_requests`), the request goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searches_per_day: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub sha256: String,
    /// The key's first characters (`fp-` and four more), so people can tell keys apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When the key was issued (shown in listings).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<SystemTime>,
    /// After this instant the key no longer works (set by `adapter rotate --grace`).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<SystemTime>,
    /// Key-specific limits, overriding the adapter's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AdapterLimitsFile>,
}

// ---------------------------------------------------------------------------------------------
// Validated model

/// Where a source lives, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The base URL's path without a trailing slash (`/v1`, `/compatible-mode/v1`, ``).
    pub path: String,
    /// [`Endpoint::host_header`] as a header value, built once instead of per request.
    pub host_value: http::HeaderValue,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{url}` must start with http:// or https://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("`{url}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if uri.query().is_some() {
            return Err(format!("`{url}` must not have a query string"));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/').to_owned();
        let host_value = http::HeaderValue::try_from(host_header(tls, &host, port))
            .map_err(|_| format!("`{url}` has a host that cannot be sent in a header"))?;
        Ok(Endpoint {
            tls,
            host,
            port,
            path,
            host_value,
        })
    }

    /// `host` header value: the port only when not the scheme's default.
    pub fn host_header(&self) -> String {
        host_header(self.tls, &self.host, self.port)
    }
}

fn host_header(tls: bool, host: &str, port: u16) -> String {
    let default = if tls { 443 } else { 80 };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == default {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// The header that carries the provider key upstream, built once per load. Its value is marked
/// sensitive, so `Debug` (and HPACK) never show it.
#[derive(Clone)]
pub struct UpstreamAuth {
    pub name: http::HeaderName,
    pub value: http::HeaderValue,
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamAuth({}: ***)", self.name)
    }
}

impl UpstreamAuth {
    /// `x-api-key: <key>` for an Anthropic source that asks for it (the default), otherwise
    /// `authorization: Bearer <key>`. `Ok(None)` when the key is missing (`${VAR}` unset).
    fn for_source(
        protocol: SourceProtocol,
        auth_header: AuthHeader,
        key: &ApiKey,
    ) -> Result<Option<UpstreamAuth>, String> {
        let ApiKey::Present(key) = key else {
            return Ok(None);
        };
        let (name, text) = match (protocol, auth_header) {
            (SourceProtocol::Anthropic, AuthHeader::XApiKey) => (
                http::HeaderName::from_static("x-api-key"),
                key.expose().to_owned(),
            ),
            (SourceProtocol::Gemini, AuthHeader::XApiKey) => (
                http::HeaderName::from_static("x-goog-api-key"),
                key.expose().to_owned(),
            ),
            _ => (
                http::header::AUTHORIZATION,
                format!("Bearer {}", key.expose()),
            ),
        };
        // Never echo the value: it is the provider key.
        let mut value = http::HeaderValue::try_from(text).map_err(|_| {
            "the key contains characters that cannot be sent in an HTTP header".to_owned()
        })?;
        value.set_sensitive(true);
        Ok(Some(UpstreamAuth { name, value }))
    }
}

/// The provider key, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKey {
    Present(Secret),
    /// `${VAR}` named a variable that is not set.
    MissingEnv(String),
}

/// One provider key of a source's pool, ready to send.
#[derive(Debug, Clone)]
pub struct ProviderKey {
    pub api_key: ApiKey,
    /// `None` when the key is missing (`${VAR}` unset).
    pub auth: Option<UpstreamAuth>,
    pub label: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub protocol: SourceProtocol,
    pub endpoint: Endpoint,
    /// The first key of the pool (the only one for `api_key:`).
    pub api_key: ApiKey,
    /// Every key of the pool, in file order; [`Source::pool`] knows their health.
    pub keys: Vec<ProviderKey>,
    /// Which key serves a request, and each key's health; new (all healthy) whenever the
    /// adapter file changes.
    pub pool: crate::routing::KeyPool,
    pub images: ImagePolicy,
    pub model: String,
    pub model_map: Vec<ModelRule>,
    pub dialect: Dialect,
    pub auth_header: AuthHeader,
    /// The auth header sent upstream, from `api_key` and `auth_header`; `None` when the key is
    /// missing.
    pub auth: Option<UpstreamAuth>,
    pub strip_anthropic_beta: bool,
    pub timeouts: Timeouts,
    pub preset: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ModelRule {
    pub pattern: String,
    pub matcher: GlobMatcher,
    pub model: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub tls: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            tls: Duration::from_secs(10),
            // Reasoning models can think for minutes before the first token.
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(300),
            total: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u32>,
    pub concurrent_requests: Option<u32>,
    pub per_key: bool,
    pub tokens_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub searches_per_day: Option<u32>,
}

impl Limits {
    pub fn has_budget(&self) -> bool {
        self.tokens_per_day.is_some() || self.tokens_per_month.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.concurrent_requests.is_none()
            && !self.has_budget()
            && self.searches_per_day.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub hash: KeyHash,
    pub prefix: Option<String>,
    /// When the key last authenticated a request (Unix seconds; 0: not since the proxy
    /// started). Shared with the same key's entry in the next version of the file.
    pub last_used: Arc<std::sync::atomic::AtomicU64>,
    pub label: Option<String>,
    pub created: Option<SystemTime>,
    pub expires: Option<SystemTime>,
    pub limits: Option<Limits>,
}

/// A route of an adapter: when it applies, and the source (with fallbacks) that serves it.
#[derive(Debug, Clone)]
pub struct Route {
    /// `name:` in the file, else its index: how logs and metrics name it.
    pub name: String,
    /// The conditions as written (for listings).
    pub conditions: crate::routing::RouteWhen,
    pub when: crate::routing::CompiledWhen,
    pub source: Source,
    pub fallbacks: Vec<Source>,
}

/// A validated adapter: its sources, the keys that reach it, and how to talk to it.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub name: String,
    pub file: PathBuf,
    /// The panel user it belongs to (`owner:`), if any.
    pub owner: Option<String>,
    /// The default route's source.
    pub source: Source,
    /// Extra sources for failover.
    pub fallbacks: Vec<Source>,
    /// Checked in order before the default route.
    pub routes: Vec<Route>,
    /// Sources and keys one request may try (at least 1).
    pub max_attempts: u32,
    pub models: Vec<String>,
    pub keys: Vec<KeyEntry>,
    pub limits: Limits,
    /// A SHA-256 prefix of the file's text: the same on every instance reading the same file,
    /// different after any edit (keys disabled through Redis are disabled for this version).
    pub version: u64,
    /// How the provider answered the last request (or the panel's Test).
    pub outcome: Arc<crate::telemetry::outcome::LastOutcome>,
    /// Who runs a client's hosted web search.
    pub web_search: crate::websearch::WebSearchMode,
    /// Exchanges kept for the inspector; `None` when off.
    pub inspect: Option<Inspect>,
}

impl Source {
    /// The provider model for the client's model: first matching rule, else the default.
    pub fn map_model(&self, client_model: &str) -> &str {
        self.model_map
            .iter()
            .find(|r| r.matcher.is_match(client_model))
            .map_or(self.model.as_str(), |r| r.model.as_str())
    }
}

impl Adapter {
    /// Client-visible model names for `GET /v1/models`.
    pub fn listed_models(&self) -> Vec<String> {
        if !self.models.is_empty() {
            return self.models.clone();
        }
        let mut names: Vec<String> = self
            .source
            .model_map
            .iter()
            .filter(|r| !r.pattern.contains(['*', '?', '[', '{']))
            .map(|r| r.pattern.clone())
            .collect();
        for default in ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"] {
            if !names.iter().any(|n| n == default) {
                names.push(default.to_owned());
            }
        }
        names
    }
}

/// Why `${VAR}` expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// The named variable is not set.
    Missing(String),
    /// The value is not well formed.
    Syntax(String),
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::Missing(var) => write!(f, "environment variable {var} is not set"),
            EnvError::Syntax(m) => f.write_str(m),
        }
    }
}

/// Expands `${VAR}` from the environment (a literal without `${` is returned as is).
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| EnvError::Syntax("unterminated `${` in value".to_owned()))?;
        let var = &after[..end];
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(EnvError::Syntax(format!(
                "`${{{var}}}` is not a valid environment variable name"
            )));
        }
        match env(var) {
            Some(v) => out.push_str(&v),
            None => return Err(EnvError::Missing(var.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `${VAR}` reads the proxy's environment, which is the operator's: in a file whose `owner`
/// is not an admin (`is_admin`), no field anywhere may hold one — not the source's key, not
/// a fallback's, nor any field added later. Such a file fails to load, naming the line.
pub fn check_owner_env_refs(
    path: &Path,
    text: &str,
    is_admin: &dyn Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    // A file that does not parse is reported by the parser itself.
    let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Ok(());
    };
    let owner = match doc.get("owner") {
        None | Some(serde_yaml_ng::Value::Null) => return Ok(()),
        Some(serde_yaml_ng::Value::String(o)) => o.as_str(),
        // Not a name: nobody is its admin.
        Some(_) => "",
    };
    if !owner.is_empty() && is_admin(owner) {
        return Ok(());
    }
    fn has_ref(v: &serde_yaml_ng::Value) -> bool {
        match v {
            serde_yaml_ng::Value::String(s) => s.contains("${"),
            serde_yaml_ng::Value::Sequence(items) => items.iter().any(has_ref),
            serde_yaml_ng::Value::Mapping(m) => m.iter().any(|(k, v)| has_ref(k) || has_ref(v)),
            serde_yaml_ng::Value::Tagged(t) => has_ref(&t.value),
            _ => false,
        }
    }
    if !has_ref(&doc) {
        return Ok(());
    }
    let line = text
        .lines()
        .position(|l| l.contains("${"))
        .map(|i| (i + 1, 1));
    Err(ConfigError::at(
        path,
        line,
        format!(
            "environment references (${{...}}) are for the operator; this adapter belongs to `{owner}`, who is not an admin, so none is read — write the value itself"
        ),
    ))
}

/// Parses and validates one adapter file's text.
pub fn parse_adapter(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Adapter, ConfigError> {
    let file: AdapterFile =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::yaml(path, &e))?;
    validate(path, text, file, env)
}

fn validate(
    path: &Path,
    text: &str,
    file: AdapterFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Adapter, ConfigError> {
    let err = |needle: &str, message: String| ConfigError::at(path, line_of(text, needle), message);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let name = file.name.clone().unwrap_or(stem);
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(err(
            "name:",
            format!("adapter names are 1 to 64 letters, digits, `-`, `_` and `.`; `{name}` is not"),
        ));
    }

    let (source, fallbacks) = validate_chain(&file.source, env, &err, "source")?;
    let mut routes = Vec::with_capacity(file.routes.len());
    for (i, route) in file.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let when = route
            .when
            .as_ref()
            .ok_or_else(|| {
                format!("{at}: a route needs `when:` (requests it serves); the adapter's `source` serves the rest")
            })
            .and_then(|w| w.compile().map_err(|m| format!("{at}.{m}")))
            .map_err(|m| err("routes:", m))?;
        let (source, fallbacks) =
            validate_chain(&route.source, env, &err, &format!("{at}.source"))?;
        routes.push(Route {
            name: route.name.clone().unwrap_or_else(|| i.to_string()),
            conditions: route.when.clone().unwrap_or_default(),
            when,
            source,
            fallbacks,
        });
    }
    let max_attempts = match file.max_attempts {
        None => 3,
        Some(n @ 1..=20) => n,
        Some(n) => {
            return Err(err(
                "max_attempts:",
                format!("max_attempts: {n} is not between 1 and 20"),
            ));
        }
    };

    let inspect = match &file.inspect {
        None => None,
        Some(i) if (1..=MAX_INSPECT_KEEP).contains(&i.keep) => Some(Inspect {
            keep: i.keep,
            header: i.header.unwrap_or(false),
        }),
        Some(i) => {
            return Err(err(
                "inspect:",
                format!(
                    "inspect.keep: {} is not between 1 and {MAX_INSPECT_KEEP}",
                    i.keep
                ),
            ));
        }
    };

    let mut keys = Vec::with_capacity(file.keys.len());
    for key in &file.keys {
        let hash = parse_hash_hex(&key.sha256).ok_or_else(|| {
            err(
                &key.sha256,
                format!(
                    "keys: `{}` is not a hex SHA-256 (64 hex digits); store the hash of a key, never the key",
                    key.sha256
                ),
            )
        })?;
        if keys.iter().any(|k: &KeyEntry| k.hash == hash) {
            return Err(err(
                &key.sha256,
                "keys: the same key hash is listed twice".to_owned(),
            ));
        }
        keys.push(KeyEntry {
            hash,
            prefix: key.prefix.clone(),
            last_used: Arc::default(),
            label: key.label.clone(),
            created: key.created,
            expires: key.expires,
            limits: key.limits.as_ref().map(limits_from),
        });
    }

    Ok(Adapter {
        name,
        file: path.to_owned(),
        owner: file.owner,
        source,
        fallbacks,
        routes,
        max_attempts,
        models: file.models,
        keys,
        limits: file.limits.as_ref().map(limits_from).unwrap_or_default(),
        version: {
            let digest = super::keys::hash_key(text);
            u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
        },
        outcome: Arc::default(),
        web_search: file.web_search.unwrap_or_default(),
        inspect,
    })
}

fn limits_from(l: &AdapterLimitsFile) -> Limits {
    Limits {
        requests_per_minute: l.requests_per_minute,
        concurrent_requests: l.concurrent_requests,
        per_key: l.per_key.unwrap_or(true),
        tokens_per_day: l.tokens_per_day,
        tokens_per_month: l.tokens_per_month,
        searches_per_day: l.searches_per_day,
    }
}

fn resolve_key(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ApiKey, String> {
    match expand_env(value, env) {
        Ok(v) => Ok(ApiKey::Present(Secret::new(v))),
        Err(EnvError::Missing(var)) => Ok(ApiKey::MissingEnv(var)),
        Err(e) => Err(e.to_string()),
    }
}

/// A source and its fallbacks (which may not have fallbacks of their own).
fn validate_chain(
    file: &SourceFile,
    env: &dyn Fn(&str) -> Option<String>,
    err: &dyn Fn(&str, String) -> ConfigError,
    at: &str,
) -> Result<(Source, Vec<Source>), ConfigError> {
    let source = validate_source(file, env, err, at, None)?;
    let mut fallbacks = Vec::with_capacity(file.fallbacks.len());
    for (i, fb) in file.fallbacks.iter().enumerate() {
        let at = format!("{at}.fallbacks[{i}]");
        if !fb.fallbacks.is_empty() {
            return Err(err(
                "fallbacks:",
                format!(
                    "{at}: a fallback cannot have fallbacks of its own; list them all under the primary"
                ),
            ));
        }
        let inherit = Inherit { primary: &source };
        fallbacks.push(validate_source(fb, env, err, &at, Some(inherit))?);
    }
    Ok((source, fallbacks))
}

/// What a fallback takes from its primary where it says nothing itself.
struct Inherit<'a> {
    primary: &'a Source,
}

fn validate_source(
    file: &SourceFile,
    env: &dyn Fn(&str) -> Option<String>,
    err: &dyn Fn(&str, String) -> ConfigError,
    at: &str,
    inherit: Option<Inherit<'_>>,
) -> Result<Source, ConfigError> {
    let named_preset = match &file.preset {
        Some(name) => Some(presets::by_name(name).ok_or_else(|| {
            err(
                "preset:",
                format!(
                    "{at}.preset: unknown preset `{name}` (known: {})",
                    presets::names().join(", ")
                ),
            )
        })?),
        None => None,
    };
    let base_url = match (&file.base_url, &named_preset) {
        (Some(url), _) => {
            expand_env(url, env).map_err(|e| err(url, format!("{at}.base_url: {e}")))?
        }
        (None, Some(p)) => p.base_url.to_owned(),
        (None, None) => {
            return Err(err(
                "source:",
                format!("{at}: `base_url` (or a `preset`) is required"),
            ));
        }
    };
    let url_needle = file.base_url.as_deref().unwrap_or("base_url:");
    let endpoint =
        Endpoint::parse(&base_url).map_err(|m| err(url_needle, format!("{at}.base_url: {m}")))?;
    let preset = named_preset.or_else(|| presets::for_host(&endpoint.host));
    // A fallback at an unknown host speaks its primary's protocol unless it says otherwise.
    let protocol = file
        .protocol
        .or(preset.as_ref().map(|p| p.protocol))
        .or(inherit.as_ref().map(|i| i.primary.protocol))
        .unwrap_or_default();
    let options = file.options.clone().unwrap_or_default();
    let auth_header = options
        .auth_header
        .or(inherit.as_ref().map(|i| i.primary.auth_header))
        .unwrap_or_default();

    let key_texts: Vec<(&str, Option<&str>)> = match (file.api_key.is_empty(), &file.api_keys) {
        (false, keys) if !keys.is_empty() => {
            return Err(err(
                "api_keys:",
                format!("{at}: give `api_key` (one key) or `api_keys` (a pool), not both"),
            ));
        }
        (false, _) => vec![(file.api_key.as_str(), None)],
        (true, keys) if !keys.is_empty() => keys.iter().map(PoolKeyFile::parts).collect(),
        (true, _) => {
            let needle = if text_has(file, "api_keys") {
                "api_keys:"
            } else {
                "source:"
            };
            return Err(err(
                needle,
                format!(
                    "{at}: a provider key is required (`api_key`, or `api_keys` with at least one key)"
                ),
            ));
        }
    };
    let mut keys = Vec::with_capacity(key_texts.len());
    for (i, (text, label)) in key_texts.iter().enumerate() {
        let field = if file.api_key.is_empty() {
            format!("{at}.api_keys[{i}]")
        } else {
            format!("{at}.api_key")
        };
        let api_key = resolve_key(text, env).map_err(|m| err(text, format!("{field}: {m}")))?;
        if let ApiKey::Present(k) = &api_key
            && k.expose().trim().is_empty()
        {
            return Err(err("api_key", format!("{field} is empty")));
        }
        let auth = UpstreamAuth::for_source(protocol, auth_header, &api_key)
            .map_err(|m| err(text, format!("{field}: {m}")))?;
        keys.push(ProviderKey {
            api_key,
            auth,
            label: label.map(str::to_owned),
        });
    }
    let pool_keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| match &k.api_key {
            ApiKey::Present(secret) => {
                crate::routing::PoolKey::new(k.label.clone(), secret.expose())
            }
            ApiKey::MissingEnv(_) => crate::routing::PoolKey::indexed(i, k.label.clone()),
        })
        .collect();
    let pool = crate::routing::KeyPool::new(
        pool_keys,
        file.balance.unwrap_or_default(),
        crate::routing::HealthConfig::default(),
    );
    let api_key = keys[0].api_key.clone();

    let (model, model_map) = match (&inherit, file.model.trim().is_empty()) {
        // A fallback without its own model serves with its primary's mapping.
        (Some(i), true) if file.model_map.is_empty() => {
            (i.primary.model.clone(), i.primary.model_map.clone())
        }
        (_, true) => {
            // Written and empty, or not written at all (then the block's first line).
            let needle = if file.model.is_empty() {
                "base_url:"
            } else {
                "model:"
            };
            return Err(err(needle, format!("{at}.model must not be empty")));
        }
        (_, false) => (
            file.model.clone(),
            compile_model_map(&file.model_map, at, err)?,
        ),
    };
    let mut dialect = match (&preset, &inherit) {
        (Some(p), _) => p.dialect.clone(),
        (None, Some(i)) => i.primary.dialect.clone(),
        (None, None) => Dialect::default(),
    };
    if let Some(v) = options.stream_usage {
        dialect.stream_usage = v;
    }
    if let Some(v) = options.max_tokens_field {
        dialect.max_tokens_field = match v {
            MaxTokensFieldFile::MaxTokens => MaxTokensField::MaxTokens,
            MaxTokensFieldFile::MaxCompletionTokens => MaxTokensField::MaxCompletionTokens,
        };
    }
    if let Some(v) = options.max_tokens_limit {
        dialect.max_tokens_limit = Some(v);
    }
    if let Some(v) = options.top_k {
        dialect.top_k = v;
    }
    if let Some(v) = options.reasoning {
        dialect.reasoning = match v {
            ReasoningFile::Effort => ReasoningStyle::Effort,
            ReasoningFile::Deepseek => ReasoningStyle::DeepSeek,
            ReasoningFile::Qwen => ReasoningStyle::Qwen,
            ReasoningFile::None => ReasoningStyle::None,
        };
    }
    if let Some(v) = options.system_messages {
        dialect.system_mid_conversation = v == SystemMessagesFile::System;
    }
    if let Some(v) = options.echo_reasoning {
        dialect.echo_reasoning = v;
    }
    if let Some(v) = options.json_schema {
        dialect.json_schema = v;
    }

    let defaults = inherit
        .as_ref()
        .map_or_else(Timeouts::default, |i| i.primary.timeouts);
    let t = file.timeouts.clone().unwrap_or_default();
    let timeouts = Timeouts {
        connect: t.connect.unwrap_or(defaults.connect),
        tls: t.tls.unwrap_or(defaults.tls),
        first_byte: t.first_byte.unwrap_or(defaults.first_byte),
        idle: t.idle.unwrap_or(defaults.idle),
        total: t.total.or(defaults.total),
    };

    let images = match options.images {
        Some(ImagesFile::Reads(true)) => ImagePolicy::Read,
        Some(ImagesFile::Reads(false)) => ImagePolicy::Omit,
        Some(ImagesFile::Mode(ImagesMode::Refuse)) => ImagePolicy::Refuse,
        None if preset.as_ref().is_some_and(|p| p.text_only(&model)) => ImagePolicy::Omit,
        None => ImagePolicy::Read,
    };
    let auth = keys[0].auth.clone();
    Ok(Source {
        protocol,
        endpoint,
        api_key,
        keys,
        pool,
        images,
        model,
        model_map,
        dialect,
        auth_header,
        auth,
        strip_anthropic_beta: options
            .strip_anthropic_beta
            .or(inherit.as_ref().map(|i| i.primary.strip_anthropic_beta))
            .unwrap_or(false),
        timeouts,
        preset: preset
            .map(|p| p.name)
            .or(inherit.as_ref().and_then(|i| i.primary.preset)),
    })
}

fn compile_model_map(
    rules: &[ModelRuleFile],
    at: &str,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<ModelRule>, ConfigError> {
    let mut model_map = Vec::with_capacity(rules.len());
    for rule in rules {
        let glob = Glob::new(&rule.pattern).map_err(|e| {
            err(
                &rule.pattern,
                format!("{at}.model_map: bad pattern `{}`: {e}", rule.pattern),
            )
        })?;
        model_map.push(ModelRule {
            pattern: rule.pattern.clone(),
            matcher: glob.compile_matcher(),
            model: rule.model.clone(),
        });
    }
    Ok(model_map)
}

/// Whether the source block named a field (for pointing at the right line).
fn text_has(file: &SourceFile, field: &str) -> bool {
    field == "api_keys" && file.api_keys.is_empty() && file.api_key.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "DEEPSEEK_API_KEY").then(|| "sk-test".to_owned())
    }

    fn parse(text: &str) -> Result<Adapter, ConfigError> {
        parse_adapter(Path::new("/conf/adapters/deepseek.yaml"), text, &env)
    }

    const GOOD: &str = r#"
source:
  base_url: https://api.deepseek.com/v1
  api_key: ${DEEPSEEK_API_KEY}
  model: deepseek-v4-flash
  model_map:
    - { match: "claude-*haiku*", model: deepseek-flash }
    - { match: "claude-opus-*", model: deepseek-v4-pro }
keys:
  - sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    label: laptop
"#;

    #[test]
    fn inspect_is_off_by_default_and_validated() {
        assert_eq!(parse(GOOD).unwrap().inspect, None);
        let on = parse(&format!("inspect: {{ keep: 50, header: true }}\n{GOOD}")).unwrap();
        assert_eq!(
            on.inspect,
            Some(Inspect {
                keep: 50,
                header: true
            })
        );
        let kept = parse(&format!("inspect: {{ keep: 5 }}\n{GOOD}")).unwrap();
        assert_eq!(kept.inspect.map(|i| i.header), Some(false));
        for (bad, says) in [
            ("inspect: { keep: 0 }", "between 1 and 1000"),
            ("inspect: { keep: 1001 }", "between 1 and 1000"),
            ("inspect: { keep: 5, bytes: 3 }", "unknown field"),
            ("inspect: { header: true }", "keep"),
        ] {
            let e = parse(&format!("{bad}\n{GOOD}")).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn issue_example_parses() {
        let a = parse(GOOD).unwrap();
        assert_eq!(a.name, "deepseek");
        assert_eq!(a.source.endpoint.host, "api.deepseek.com");
        assert_eq!(a.source.endpoint.path, "/v1");
        assert!(a.source.endpoint.tls);
        assert_eq!(a.source.api_key, ApiKey::Present(Secret::new("sk-test")));
        assert_eq!(
            a.source.map_model("claude-haiku-4-5-20251001"),
            "deepseek-flash"
        );
        assert_eq!(a.source.map_model("claude-opus-4-1"), "deepseek-v4-pro");
        assert_eq!(a.source.map_model("claude-sonnet-4-5"), "deepseek-v4-flash");
        assert_eq!(a.source.preset, Some("deepseek"));
        assert_eq!(a.source.dialect.reasoning, ReasoningStyle::DeepSeek);
        assert_eq!(a.keys[0].label.as_deref(), Some("laptop"));
    }

    #[test]
    fn upstream_auth_and_host_are_built_once_at_load() {
        let a = parse(GOOD).unwrap();
        let auth = a.source.auth.as_ref().unwrap();
        assert_eq!(auth.name, http::header::AUTHORIZATION);
        assert_eq!(auth.value, "Bearer sk-test");
        assert!(auth.value.is_sensitive());
        // Debug output (logs, panics) never shows the key.
        assert!(!format!("{:?}", a.source).contains("sk-test"));
        assert_eq!(a.source.endpoint.host_value, "api.deepseek.com");

        let anthropic = parse(&GOOD.replace(
            "  model: deepseek-v4-flash",
            "  model: deepseek-v4-flash\n  protocol: anthropic",
        ))
        .unwrap();
        let auth = anthropic.source.auth.as_ref().unwrap();
        assert_eq!(auth.name, "x-api-key");
        assert_eq!(auth.value, "sk-test");

        let missing = parse(&GOOD.replace("DEEPSEEK_API_KEY", "UNSET_VAR_X")).unwrap();
        assert!(missing.source.auth.is_none());
    }

    #[test]
    fn a_key_that_cannot_be_a_header_value_is_a_config_error() {
        let e = parse(&GOOD.replace("${DEEPSEEK_API_KEY}", "\"sk-canary\\u0001x\"")).unwrap_err();
        assert!(
            e.message.contains("cannot be sent in an HTTP header"),
            "{e}"
        );
        assert!(!e.to_string().contains("sk-canary"), "{e}");
    }

    #[test]
    fn missing_env_var_is_not_an_error_but_recorded() {
        let a = parse(&GOOD.replace("DEEPSEEK_API_KEY", "UNSET_VAR_X")).unwrap();
        assert_eq!(a.source.api_key, ApiKey::MissingEnv("UNSET_VAR_X".into()));
    }

    const ROUTED: &str = r#"
source:
  preset: deepseek
  api_keys: [sk-a, { key: "${DEEPSEEK_API_KEY}", label: team }, sk-c]
  balance: least_busy
  model: deepseek-v4-flash
  fallbacks:
    - { preset: deepseek-anthropic, api_key: sk-f, model: deepseek-v4-flash }
    - { base_url: "https://llm.example.com/v1", api_key: sk-g }
routes:
  - name: background
    when: { model: "claude-*haiku*" }
    source: { base_url: "https://dashscope.aliyuncs.com/compatible-mode/v1", api_key: sk-q, model: qwen-flash }
  - when: { images: true, min_input_tokens: 10 }
    source:
      preset: dashscope
      api_key: sk-q
      model: qwen3-vl-plus
      options: { images: true }
max_attempts: 4
keys:
  - sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
"#;

    #[test]
    fn routes_pools_and_full_fallbacks_parse() {
        let a = parse(ROUTED).unwrap();
        assert_eq!(a.source.keys.len(), 3);
        assert_eq!(
            a.source.keys[1].api_key,
            ApiKey::Present(Secret::new("sk-test"))
        );
        assert_eq!(a.source.keys[1].label.as_deref(), Some("team"));
        assert_eq!(a.source.pool.len(), 3);
        assert_eq!(a.source.pool.balance(), crate::routing::Balance::LeastBusy);
        assert_eq!(a.source.api_key, ApiKey::Present(Secret::new("sk-a")));
        assert_eq!(a.fallbacks.len(), 2);
        assert_eq!(a.fallbacks[0].protocol, SourceProtocol::Anthropic);
        assert_eq!(a.fallbacks[0].endpoint.path, "/anthropic");
        // An unknown host speaks its primary's protocol, with its primary's model.
        assert_eq!(a.fallbacks[1].protocol, SourceProtocol::OpenAi);
        assert_eq!(a.fallbacks[1].model, "deepseek-v4-flash");
        assert_eq!(a.routes.len(), 2);
        assert_eq!(a.routes[0].name, "background");
        assert_eq!(a.routes[1].name, "1");
        assert_eq!(a.routes[0].source.model, "qwen-flash");
        assert_eq!(a.routes[1].source.images, ImagePolicy::Read);
        assert_eq!(a.max_attempts, 4);
        // DeepSeek's pro model cannot read images; options say otherwise.
        let pro = parse(&ROUTED.replace(
            "model: deepseek-v4-flash\n  fallbacks",
            "model: deepseek-v4-pro\n  fallbacks",
        ))
        .unwrap();
        assert_eq!(pro.source.images, ImagePolicy::Omit);
        let refuse = ROUTED.replace("options: { images: true }", "options: { images: refuse }");
        assert_eq!(
            parse(&refuse).unwrap().routes[1].source.images,
            ImagePolicy::Refuse
        );
        assert_eq!(parse(GOOD).unwrap().max_attempts, 3);
    }

    #[test]
    fn bad_routes_and_pools_name_file_line_and_column() {
        for (from, to, says) in [
            (
                "when: { images: true, min_input_tokens: 10 }",
                "when: { pictures: true }",
                "pictures",
            ),
            (
                "when: { images: true, min_input_tokens: 10 }",
                "when: {}",
                "at least one condition",
            ),
            (
                "  - when: { images: true, min_input_tokens: 10 }\n",
                "  - name: x\n",
                "needs `when:`",
            ),
            (
                "api_keys: [sk-a, { key: \"${DEEPSEEK_API_KEY}\", label: team }, sk-c]",
                "api_keys: []",
                "provider key is required",
            ),
            ("balance: least_busy", "balance: random", "random"),
            ("max_attempts: 4", "max_attempts: 0", "max_attempts"),
            (
                "    - { base_url: \"https://llm.example.com/v1\", api_key: sk-g }",
                "    - { base_url: \"https://llm.example.com/v1\", api_key: sk-g, fallbacks: [{ base_url: \"https://x.example/v1\", api_key: k }] }",
                "cannot have fallbacks",
            ),
        ] {
            assert!(ROUTED.contains(from), "{from}");
            let e = parse(&ROUTED.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(says), "{to}: {e}");
            assert!(e.starts_with("/conf/adapters/deepseek.yaml:"), "{e}");
            let location = e.split(':').nth(1).unwrap();
            assert!(location.parse::<usize>().is_ok(), "a line number: {e}");
        }
    }

    #[test]
    fn env_references_in_a_users_file_fail_with_file_and_line() {
        let path = Path::new("/conf/adapters/u.yaml");
        let text = "owner: alice\nsource:\n  base_url: https://a.example/v1\n  api_key: sk-x\n  model: m\n  fallbacks:\n    - base_url: https://b.example/v1\n      api_key: \"x\\x24{HOME}\"\n";
        let admins = |o: &str| o == "carol";
        // Written escaped (`\x24{`), so no line shows `${`: still found, in the parsed values.
        let e = check_owner_env_refs(path, text, &admins).unwrap_err();
        assert!(e.to_string().starts_with("/conf/adapters/u.yaml"), "{e}");
        let plain = text.replace("\\x24{HOME}", "${HOME}");
        let e = check_owner_env_refs(path, &plain, &admins)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/conf/adapters/u.yaml:8:"), "{e}");
        assert!(e.contains("alice"), "{e}");
        assert!(check_owner_env_refs(path, &plain.replace("alice", "carol"), &admins).is_ok());
        let operator = plain.replace("owner: alice\n", "");
        assert!(check_owner_env_refs(path, &operator, &admins).is_ok());
        let odd = plain.replace("owner: alice", "owner: [alice]");
        assert!(
            check_owner_env_refs(path, &odd, &|_| true).is_err(),
            "not a name"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_line() {
        let e = parse(&GOOD.replace(
            "  model: deepseek-v4-flash",
            "  model: deepseek-v4-flash\n  modle: typo",
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("deepseek.yaml:6:"), "{text}");
        assert!(text.contains("modle"), "{text}");
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let e = parse(&GOOD.replace("ba7816bf", "zz7816bf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("deepseek.yaml:10"), "{e}");
        let e = parse(&GOOD.replace("https://api.deepseek.com/v1", "ftp://x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("deepseek.yaml:3") && e.contains("http"), "{e}");
        let e = parse(&GOOD.replace("claude-opus-*", "claude-[opus"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("deepseek.yaml:8"), "{e}");
    }

    #[test]
    fn options_override_presets() {
        let text = GOOD.replace(
            "  model_map:",
            "  options:\n    reasoning: none\n    max_tokens_limit: 8192\n    system_messages: user\n  model_map:",
        );
        let a = parse(&text).unwrap();
        assert_eq!(a.source.dialect.reasoning, ReasoningStyle::None);
        assert_eq!(a.source.dialect.max_tokens_limit, Some(8192));
        assert!(!a.source.dialect.system_mid_conversation);
    }

    #[test]
    fn preset_fills_the_base_url() {
        let a = parse("source:\n  preset: dashscope\n  api_key: k\n  model: qwen-plus\n").unwrap();
        assert_eq!(a.source.endpoint.host, "dashscope.aliyuncs.com");
        assert_eq!(a.source.endpoint.path, "/compatible-mode/v1");
        assert_eq!(a.source.dialect.reasoning, ReasoningStyle::Qwen);
        let a = parse(
            "source:\n  preset: deepseek-anthropic\n  api_key: k\n  model: deepseek-v4-flash\n",
        )
        .unwrap();
        assert_eq!(a.source.protocol, SourceProtocol::Anthropic);
    }

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (false, 8080, ""));
        assert_eq!(e.host_header(), "127.0.0.1:8080");
        assert_eq!(
            Endpoint::parse("https://api.x.ai/v1")
                .unwrap()
                .host_header(),
            "api.x.ai"
        );
        assert!(Endpoint::parse("api.x.ai/v1").is_err());
    }

    #[test]
    fn env_expansion() {
        let env = |v: &str| (v == "A").then(|| "1".to_owned());
        assert_eq!(expand_env("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand_env("plain", &env).unwrap(), "plain");
        assert_eq!(
            expand_env("${B}", &env).unwrap_err(),
            EnvError::Missing("B".into())
        );
        assert!(expand_env("${A", &env).is_err());
    }
}
