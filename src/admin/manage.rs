//! What the management API and the panel do, in one place: list, create, rotate, patch and
//! delete adapters as a given [`Actor`] — a panel user sees and changes only their own
//! adapters, an admin (or the admin token) all of them. Every change goes through the same
//! file edits as the CLI (`config::edit`), and returns once the running proxy has loaded it,
//! so a key handed out works at once and a rotated-out key is refused at once.

use super::probe::{self, HostCheck, ProbeResult};

mod check;
use crate::config::adapter::{
    AdapterFile, AdapterLimitsFile, ApiKey, Endpoint, ModelRuleFile, OptionsFile, PoolKeyFile,
    RouteFile, Source, SourceFile, SourceProtocol, TimeoutsFile,
};
use crate::config::edit::{self, CreateSpec, EditError, PatchSpec};
use crate::config::keys::{Secret, hash_key};
use crate::config::server::ServerConfig;
use crate::config::setup::client_setup;
use crate::config::users::{self, UsersStore};
use crate::config::watch::LiveConfig;
use crate::config::{adapter::Adapter, presets};
use crate::routing::{Balance, Health, RouteWhen};
use crate::telemetry::audit::{self, Event, Kind};
use crate::telemetry::outcome::FailureReason;
use crate::telemetry::usage_view::{self, UsageScope};
pub use crate::telemetry::usage_view::{RecentRequest, UsageRow};
pub use check::{CheckRequest, CheckResponse, SuggestedOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the usage page shows one user ([`Manager::usage`]).
#[derive(Debug, Clone)]
pub struct UsageData {
    pub rows: Vec<UsageRow>,
    pub recent: Vec<RecentRequest>,
    /// The adapters the user has now.
    pub current: Vec<String>,
}

/// Who is asking: a panel user, or the admin token (an admin named `admin`, owning nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub admin: bool,
    /// The user's cap on owned adapters; `None` for the admin token.
    pub max_adapters: Option<usize>,
    /// Whether this is a panel user (adapters it creates get it as `owner`).
    pub is_user: bool,
}

impl Actor {
    pub fn token() -> Actor {
        Actor {
            name: "admin".into(),
            admin: true,
            max_adapters: None,
            is_user: false,
        }
    }

    pub fn user(u: &users::User) -> Actor {
        Actor {
            name: u.name.clone(),
            admin: u.admin,
            max_adapters: Some(u.max_adapters),
            is_user: true,
        }
    }

    fn sees(&self, owner: Option<&str>) -> bool {
        self.admin || owner == Some(self.name.as_str())
    }
}

/// A refusal with its HTTP status; the message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// For the API and the log: English, naming the field as the file does.
    pub message: String,
    /// The field at fault, as the file names it (`routes[0].source.base_url`).
    pub field: Option<String>,
    /// What the panel says, in the user's language: `err_<code>` of its tables (empty: a
    /// generic refusal, with the message for admins only).
    pub code: &'static str,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            code: "",
        }
    }

    pub fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(400, format!("{field}: {why}"))
        }
    }

    /// Names the panel's words for this refusal.
    pub fn coded(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> ApiError {
        let status = match &e {
            EditError::Invalid(_) | EditError::BadName(_) => 400,
            EditError::NotFound(..) | EditError::NoKey(_) => 404,
            EditError::Exists(_) | EditError::Cap(_) | EditError::Stale(_) => 409,
            EditError::Io(_) => 500,
        };
        if status == 500 {
            // Paths and OS errors are for the operator's log, not for the caller.
            tracing::error!(target: "flexiproxy::admin", "adapter edit failed: {e}");
            return ApiError::new(
                500,
                "the adapter file could not be written; the log says why",
            );
        }
        let code = match &e {
            EditError::BadName(_) | EditError::Exists(_) => "name_unavailable",
            EditError::NotFound(..) | EditError::NoKey(_) => "not_found",
            EditError::Cap(_) => "cap",
            EditError::Stale(_) => "stale",
            EditError::Invalid(m) if m.contains("control characters") => "bad_text",
            EditError::Invalid(m) if m.contains("characters") && m.contains("at most") => {
                "too_long"
            }
            EditError::Invalid(m) if m.contains("only working key") => "only_working_key",
            _ => "",
        };
        ApiError::new(status, e.to_string()).coded(code)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// How edits name the key: the first 12 hex digits of its SHA-256.
    pub id: String,
    /// Its first characters (`fp-abcd`), for keys issued since prefixes were recorded.
    pub prefix: Option<String>,
    pub label: Option<String>,
    /// When it last authenticated a request (RFC 3339; since the proxy started).
    pub last_used: Option<String>,
    /// RFC 3339.
    pub created: Option<String>,
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdapterView {
    pub name: String,
    pub owner: Option<String>,
    pub protocol: &'static str,
    pub source_host: String,
    pub model: String,
    pub keys: Vec<KeyView>,
    /// `ok`, `env var X missing`, `provider key refused`, `failing` (the last request or Test
    /// could not reach the provider: `last_outcome` says since when and why) or `cooling down`.
    pub status: String,
    /// What clients use as their base URL.
    pub base_url: String,
    /// The adapter file's version; send it back as `If-Match` to refuse stale edits.
    pub version: String,
    /// How the default source's pool spreads requests.
    pub balance: Balance,
    /// The default route's fallbacks, in order.
    pub fallbacks: Vec<SourceView>,
    /// Routes checked before the default source, in order.
    pub routes: Vec<RouteView>,
    /// Every provider key of every route and source, with its health (never the key).
    pub provider_keys: Vec<ProviderKeyView>,
    /// How the provider answered the last request or Test since the file last changed.
    pub last_outcome: Option<OutcomeView>,
}

/// An adapter's last outcome as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeView {
    pub ok: bool,
    /// RFC 3339.
    pub at: String,
    /// When the current run of answers (or failures) began.
    pub since: String,
    pub reason: Option<FailureReason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub name: String,
    pub when: RouteWhen,
    /// `when` in one line, as the file writes it: `model: claude-*haiku*, images: true`.
    pub conditions: String,
    pub protocol: &'static str,
    pub source_host: String,
    pub model: String,
    pub balance: Balance,
    pub fallbacks: Vec<SourceView>,
}

/// A source as listings show it: where it is and what it serves (never its keys).
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub protocol: &'static str,
    pub source_host: String,
    pub model: String,
    /// How many provider keys its pool has.
    pub keys: usize,
}

impl SourceView {
    fn of(s: &Source) -> SourceView {
        SourceView {
            protocol: s.protocol.name(),
            source_host: s.endpoint.host_header(),
            model: s.model.clone(),
            keys: s.keys.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderKeyView {
    /// `default` or the route's name.
    pub route: String,
    /// 0 the route's source, then its fallbacks.
    pub source: usize,
    pub key: usize,
    pub label: Option<String>,
    /// In words: `healthy`, `cooling until …`, `disabled: 401`, `failing, retried at …`,
    /// `half-open`, `env var X missing`.
    pub state: String,
    /// The state's kind: `healthy`, `cooling`, `disabled`, `failing`, `half_open`, `missing`.
    pub health: &'static str,
    /// What the kind names: the time (RFC 3339), the provider's status or the variable.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRequest {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: String,
    /// A pool of provider keys (each a string or `{key, label}`), instead of `api_key`.
    #[serde(default)]
    pub api_keys: Option<Vec<PoolKeyFile>>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub model_map: Vec<ModelRuleFile>,
    #[serde(default)]
    pub options: Option<OptionsFile>,
    /// How a pool spreads requests: `sticky` (the default), `least_busy`, `round_robin`.
    #[serde(default)]
    pub balance: Option<Balance>,
    /// Sources tried in order when this one fails before anything reached the client; a
    /// fallback without `model` uses this source's model (and cannot have fallbacks itself).
    #[serde(default)]
    pub fallbacks: Vec<SourceRequest>,
    #[serde(default)]
    pub timeouts: Option<TimeoutsFile>,
}

impl From<&SourceFile> for SourceRequest {
    /// A source of a file as a request would give it: how the panel's edits send back the
    /// parts they do not change (keys included, which never leave the server).
    fn from(s: &SourceFile) -> SourceRequest {
        SourceRequest {
            base_url: s.base_url.clone(),
            api_key: s.api_key.clone(),
            api_keys: (!s.api_keys.is_empty()).then(|| s.api_keys.clone()),
            model: s.model.clone(),
            protocol: s.protocol.map(|p| p.name().to_owned()),
            preset: s.preset.clone(),
            model_map: s.model_map.clone(),
            options: s.options.clone(),
            balance: s.balance,
            fallbacks: s.fallbacks.iter().map(SourceRequest::from).collect(),
            timeouts: s.timeouts.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: SourceRequest,
    #[serde(default)]
    pub label: Option<String>,
    /// Admins may create an adapter for a user.
    #[serde(default)]
    pub owner: Option<String>,
    /// Checked in order before `source`; the first whose `when` holds serves the request.
    #[serde(default)]
    pub routes: Vec<RouteRequest>,
}

/// A route: `name` (else its index names it), `when` (its conditions) and a source like
/// the create request's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// Read as [`RouteWhen`] here, so that an error names the route.
    #[serde(default)]
    pub when: Option<serde_json::Value>,
    #[serde(default)]
    pub source: SourceRequest,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long old keys keep working (`1h`, `7d`); without it they stop at once.
    #[serde(default)]
    pub grace: Option<String>,
    /// Rotate only the keys with this label (the new key gets it too).
    #[serde(default)]
    pub label: Option<String>,
    /// The new key's label, instead of the rotated key's.
    #[serde(default)]
    pub new_label: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatchRequest {
    /// `null` or empty removes the label.
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_map: Option<Vec<ModelRuleFile>>,
    /// `null` removes the limits.
    #[serde(default, deserialize_with = "present")]
    pub limits: Option<Option<AdapterLimitsFile>>,
    /// The provider key; replaces a pool.
    #[serde(default)]
    pub api_key: Option<String>,
    /// A pool of provider keys; replaces `api_key` or the pool there was.
    #[serde(default)]
    pub api_keys: Option<Vec<PoolKeyFile>>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The whole list of routes; `null` or `[]` removes them.
    #[serde(default, deserialize_with = "present")]
    pub routes: Option<Option<Vec<RouteRequest>>>,
    /// The default source's pool balance; `null` sets it back to sticky.
    #[serde(default, deserialize_with = "present")]
    pub balance: Option<Option<Balance>>,
    /// The default source's whole list of fallbacks; `null` or `[]` removes them.
    #[serde(default, deserialize_with = "present")]
    pub fallbacks: Option<Option<Vec<SourceRequest>>>,
}

/// The names of the fields a patch sets, for the audit log (never their values: a provider
/// key is one).
fn patched_fields(req: &PatchRequest) -> String {
    let fields = [
        ("model", req.model.is_some()),
        ("model_map", req.model_map.is_some()),
        ("limits", req.limits.is_some()),
        ("api_key", req.api_key.is_some()),
        ("api_keys", req.api_keys.is_some()),
        ("base_url", req.base_url.is_some()),
        ("balance", req.balance.is_some()),
        ("fallbacks", req.fallbacks.is_some()),
        ("routes", req.routes.is_some()),
    ];
    let set: Vec<&str> = fields.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    format!("fields={}", set.join(","))
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A new key: its only appearance.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub api_key: String,
    pub base_url: String,
    pub adapter: AdapterView,
    pub setup: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct PresetView {
    pub name: &'static str,
    pub base_url: &'static str,
    pub protocol: &'static str,
    pub example_model: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub admin: bool,
    /// `active`, `pending` (signed up, not yet approved) or `disabled`.
    pub status: &'static str,
    pub max_adapters: usize,
    pub owned: usize,
    /// The user's own quota (`null`: `accounts.default_quota`).
    pub quota: Option<crate::config::accounts::QuotaFile>,
}

pub struct Manager {
    pub server: Arc<ServerConfig>,
    pub live: LiveConfig,
    pub users: Arc<UsersStore>,
}

/// What a user is told about a name that is malformed, too long or in use by anyone.
pub const NAME_NOT_AVAILABLE: &str =
    "not available; choose another name of 1 to 64 letters, digits, `-`, `_` and `.`";

/// How long a change may take to reach the running proxy before the call returns anyway.
const APPLY_DEADLINE: Duration = Duration::from_secs(3);

/// A provider key's state: its kind, what the kind names (a time, a status), and both in
/// words: `healthy`, `cooling until …`, `disabled: 401`, `failing, retried at …`,
/// `half-open`.
fn key_state(health: Health, now: Instant) -> (&'static str, Option<String>, String) {
    let at = |until: Instant| {
        let when = SystemTime::now() + until.saturating_duration_since(now);
        humantime::format_rfc3339_seconds(when).to_string()
    };
    match health {
        Health::Healthy => ("healthy", None, "healthy".to_owned()),
        Health::Disabled { status } => (
            "disabled",
            Some(status.to_string()),
            format!("disabled: {status}"),
        ),
        Health::Cooling { until } => {
            let t = at(until);
            ("cooling", Some(t.clone()), format!("cooling until {t}"))
        }
        Health::BreakerOpen { until } => {
            let t = at(until);
            (
                "failing",
                Some(t.clone()),
                format!("failing, retried at {t}"),
            )
        }
        Health::HalfOpen { .. } => ("half_open", None, "half-open".to_owned()),
    }
}

/// Every provider key of an adapter, by route and source, with its state (never its text).
fn provider_keys(a: &Adapter, now: Instant) -> Vec<ProviderKeyView> {
    let routes = std::iter::once(("default".to_owned(), &a.source, &a.fallbacks)).chain(
        a.routes
            .iter()
            .map(|r| (r.name.clone(), &r.source, &r.fallbacks)),
    );
    let mut out = Vec::new();
    for (route, primary, fallbacks) in routes {
        for (source, s) in std::iter::once(primary).chain(fallbacks).enumerate() {
            for state in s.pool.state(now) {
                let (health, detail, text) = match &s.keys[state.index].api_key {
                    ApiKey::MissingEnv(var) => (
                        "missing",
                        Some(var.clone()),
                        format!("env var {var} missing"),
                    ),
                    ApiKey::Present(_) => key_state(state.health, now),
                };
                out.push(ProviderKeyView {
                    route: route.clone(),
                    source,
                    key: state.index,
                    label: state.label,
                    state: text,
                    health,
                    detail,
                });
            }
        }
    }
    out
}

/// An adapter as the API, the panel and `flexiproxy adapter show` describe it: never a key's
/// text; `base_url` is what clients use, `version` the file's.
pub fn adapter_view(a: &Adapter, base_url: &str, version: String) -> AdapterView {
    let now = Instant::now();
    let keys = provider_keys(a, now);
    let default_keys: Vec<&ProviderKeyView> = keys
        .iter()
        .filter(|k| k.route == "default" && k.source == 0)
        .collect();
    let status = if let ApiKey::MissingEnv(var) = &a.source.api_key {
        format!("env var {var} missing")
    } else if default_keys
        .iter()
        .any(|k| k.state == "healthy" || k.state == "half-open")
    {
        "ok".to_owned()
    } else if default_keys.iter().all(|k| k.state.starts_with("disabled")) {
        "provider key refused".to_owned()
    } else {
        "cooling down".to_owned()
    };
    let rfc3339 = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let last = a.outcome.get();
    // A provider failing now says more than keys that look healthy.
    let status = match last {
        Some(o) if !o.ok && (status == "ok" || status == "cooling down") => "failing".to_owned(),
        _ => status,
    };
    AdapterView {
        name: a.name.clone(),
        owner: a.owner.clone(),
        protocol: a.source.protocol.name(),
        source_host: a.source.endpoint.host_header(),
        model: a.source.model.clone(),
        keys: a
            .keys
            .iter()
            .map(|k| KeyView {
                id: hex::encode(&k.hash[..6]),
                prefix: k.prefix.clone(),
                last_used: match k.last_used.load(std::sync::atomic::Ordering::Relaxed) {
                    0 => None,
                    secs => Some(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))),
                },
                label: k.label.clone(),
                created: k.created.map(rfc3339),
                expires: k.expires.map(rfc3339),
            })
            .collect(),
        status,
        base_url: base_url.to_owned(),
        version,
        balance: a.source.pool.balance(),
        fallbacks: a.fallbacks.iter().map(SourceView::of).collect(),
        routes: a
            .routes
            .iter()
            .map(|r| RouteView {
                name: r.name.clone(),
                when: r.conditions.clone(),
                conditions: conditions_text(&r.conditions),
                protocol: r.source.protocol.name(),
                source_host: r.source.endpoint.host_header(),
                model: r.source.model.clone(),
                balance: r.source.pool.balance(),
                fallbacks: r.fallbacks.iter().map(SourceView::of).collect(),
            })
            .collect(),
        provider_keys: keys,
        last_outcome: last.map(|o| OutcomeView {
            ok: o.ok,
            at: rfc3339(o.at),
            since: rfc3339(o.since),
            reason: o.reason,
        }),
    }
}

/// A route's conditions in one line, in the file's words.
fn conditions_text(w: &RouteWhen) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &w.model {
        parts.push(format!("model: {m}"));
    }
    if let Some(i) = w.images {
        parts.push(format!("images: {i}"));
    }
    if let Some(n) = w.min_input_tokens {
        parts.push(format!("min_input_tokens: {n}"));
    }
    if let Some(t) = w.thinking {
        parts.push(format!("thinking: {t}"));
    }
    parts.join(", ")
}

/// `{at}.when: …` for a route's conditions as the request gave them.
fn route_when(at: &str, when: Option<serde_json::Value>) -> Result<RouteWhen, ApiError> {
    let field = format!("{at}.when");
    let when = when.filter(|w| !w.is_null()).ok_or_else(|| {
        ApiError::bad(
            &field,
            "required: the conditions (model, images, min_input_tokens, thinking) of the requests this route serves",
        )
        .coded("when")
    })?;
    let when: RouteWhen =
        serde_json::from_value(when).map_err(|e| ApiError::bad(&field, e).coded("when"))?;
    when.validate().map_err(|m| {
        match m.strip_prefix("when.") {
            Some(rest) => ApiError {
                field: Some(field.clone()),
                ..ApiError::new(400, format!("{field}.{rest}"))
            },
            None => ApiError::bad(&field, m),
        }
        .coded("when")
    })?;
    Ok(when)
}

impl Manager {
    fn view(&self, a: &Adapter, version: String) -> AdapterView {
        adapter_view(a, &self.server.public_base_url, version)
    }

    /// The adapters the actor may see, as loaded by the proxy.
    pub fn list(&self, actor: &Actor) -> Vec<AdapterView> {
        let files = edit::entries(&self.server.adapters_dir).unwrap_or_default();
        let snapshot = self.live.load();
        let mut out: Vec<AdapterView> = snapshot
            .adapters
            .iter()
            .filter(|a| actor.sees(a.owner.as_deref()))
            .map(|a| {
                let version = files
                    .iter()
                    .find(|f| f.name == a.name)
                    .map(|f| f.version.clone())
                    .unwrap_or_default();
                self.view(a, version)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Adapters the actor owns (all, for an admin) and how many they may have.
    pub fn cap(&self, actor: &Actor) -> (usize, Option<usize>) {
        let files = edit::entries(&self.server.adapters_dir).unwrap_or_default();
        if actor.admin {
            return (files.len(), self.server.max_adapters);
        }
        let owned = files
            .iter()
            .filter(|f| f.owner.as_deref() == Some(actor.name.as_str()))
            .count();
        (owned, actor.max_adapters)
    }

    pub fn presets() -> Vec<PresetView> {
        presets::all()
            .into_iter()
            .map(|p| PresetView {
                name: p.name,
                base_url: p.base_url,
                protocol: p.protocol.name(),
                example_model: p.example_model,
            })
            .collect()
    }

    /// The presets `actor` can use: a user held to public sources does not see the local
    /// servers' (Ollama, vLLM on 127.0.0.1) unless the operator allows their address.
    pub fn presets_for(&self, actor: &Actor) -> Vec<PresetView> {
        let held = !actor.admin;
        Self::presets()
            .into_iter()
            .filter(|p| {
                let Ok(endpoint) = Endpoint::parse(p.base_url) else {
                    return false;
                };
                let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
                let ip = match host {
                    "localhost" => Some(std::net::IpAddr::from([127, 0, 0, 1])),
                    h => h.parse().ok(),
                };
                !held || ip.is_none_or(|ip| self.server.egress.refusal(host, ip).is_none())
            })
            .collect()
    }

    /// Whether `owner`'s adapters are held to public sources.
    fn restricted(&self, owner: Option<&str>) -> bool {
        owner.is_some_and(|o| !self.users.current().is_admin(o))
    }

    /// Refuses a base URL that resolves to an internal address, for a restricted owner.
    /// Every fallback's address checked for `owner`, as its primary's is (`at` names the
    /// primary).
    async fn check_fallbacks_egress(
        &self,
        owner: Option<&str>,
        fallbacks: &[SourceFile],
        at: &str,
    ) -> Result<(), ApiError> {
        for (i, fb) in fallbacks.iter().enumerate() {
            let field = format!("{at}.fallbacks[{i}].base_url");
            let url = fb.base_url.clone().or_else(|| {
                let preset = presets::by_name(fb.preset.as_deref()?)?;
                Some(preset.base_url.to_owned())
            });
            match url {
                Some(url) => self.check_egress(owner, &url, &field).await?,
                None => {
                    return Err(ApiError::bad(&field, "required unless a preset is given")
                        .coded("required"));
                }
            }
        }
        Ok(())
    }

    async fn check_egress(
        &self,
        owner: Option<&str>,
        base_url: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        let endpoint =
            Endpoint::parse(base_url).map_err(|e| ApiError::bad(field, e).coded("bad_url"))?;
        if !self.restricted(owner) {
            return Ok(());
        }
        // A name that does not resolve now has no address to refuse; the proxy checks the
        // address again on every connect.
        match probe::check_host(&self.server.egress, &endpoint.host, endpoint.port).await {
            Ok(_) | Err(HostCheck::Unresolved(_)) => Ok(()),
            Err(HostCheck::Refused(refusal)) => {
                Err(ApiError::bad(field, refusal).coded("internal_source"))
            }
        }
    }

    fn check_api_key(&self, actor: &Actor, field: &str, key: &str) -> Result<(), ApiError> {
        if key.trim().is_empty() {
            return Err(ApiError::bad(field, "required").coded("required"));
        }
        // `${VAR}` reads the proxy's environment: the operator's secrets are not for users.
        if !actor.admin && key.contains("${") {
            return Err(ApiError::bad(
                field,
                "environment references (${...}) are for admins only; give the key itself",
            )
            .coded("env_ref"));
        }
        Ok(())
    }

    /// A pool (`field` is its name, e.g. `source.api_keys`): at least one key, none empty,
    /// no `${` from a non-admin in a key or a label.
    fn check_pool(&self, actor: &Actor, field: &str, pool: &[PoolKeyFile]) -> Result<(), ApiError> {
        if pool.is_empty() {
            return Err(
                ApiError::bad(field, "an empty pool; give at least one key").coded("required")
            );
        }
        for (i, k) in pool.iter().enumerate() {
            let (key, label) = match k {
                PoolKeyFile::Plain(key) => (key, None),
                PoolKeyFile::Labeled { key, label } => (key, label.as_deref()),
            };
            let at = format!("{field}[{i}]");
            self.check_api_key(actor, &at, key)?;
            self.check_env_refs(actor, &[(format!("{at}.label"), label)])?;
        }
        Ok(())
    }

    /// A source of a request as the file's source block, checked but for its address (that
    /// needs the owner); `at` names its fields. Also the base URL it resolves to.
    fn source_file(
        &self,
        actor: &Actor,
        src: SourceRequest,
        at: &str,
    ) -> Result<(SourceFile, String), ApiError> {
        self.source_file_in(actor, src, at, false)
    }

    /// [`Self::source_file`]; a fallback (`is_fallback`) may leave out its model and may not
    /// have fallbacks of its own.
    fn source_file_in(
        &self,
        actor: &Actor,
        src: SourceRequest,
        at: &str,
        is_fallback: bool,
    ) -> Result<(SourceFile, String), ApiError> {
        let field = |f: &str| format!("{at}.{f}");
        let mut fields = vec![
            (field("base_url"), src.base_url.as_deref()),
            (field("model"), Some(src.model.as_str())),
            (field("protocol"), src.protocol.as_deref()),
            (field("preset"), src.preset.as_deref()),
        ];
        for rule in &src.model_map {
            fields.push((field("model_map"), Some(&rule.pattern)));
            fields.push((field("model_map"), Some(&rule.model)));
        }
        self.check_env_refs(actor, &fields)?;
        if src.model.trim().is_empty() && !is_fallback {
            return Err(ApiError::bad(&field("model"), "required").coded("required"));
        }
        if is_fallback && !src.fallbacks.is_empty() {
            return Err(ApiError::bad(
                &field("fallbacks"),
                "a fallback cannot have fallbacks of its own; list them all under the primary",
            ));
        }
        let mut fallbacks = Vec::with_capacity(src.fallbacks.len());
        for (i, fb) in src.fallbacks.into_iter().enumerate() {
            let (fb, _) =
                self.source_file_in(actor, fb, &field(&format!("fallbacks[{i}]")), true)?;
            fallbacks.push(fb);
        }
        let api_keys = match src.api_keys {
            Some(_) if !src.api_key.is_empty() => {
                return Err(ApiError::bad(
                    &field("api_keys"),
                    "give api_key (one key) or api_keys (a pool), not both",
                ));
            }
            Some(pool) => {
                self.check_pool(actor, &field("api_keys"), &pool)?;
                pool
            }
            None => {
                self.check_api_key(actor, &field("api_key"), &src.api_key)?;
                Vec::new()
            }
        };
        let protocol = match src.protocol.as_deref() {
            None | Some("") => None,
            Some(p) => Some(SourceProtocol::parse(p).ok_or_else(|| {
                ApiError::bad(
                    &field("protocol"),
                    "one of openai, anthropic, responses, gemini",
                )
                .coded("protocol")
            })?),
        };
        let preset = src.preset.filter(|p| !p.is_empty() && p != "custom");
        let base_url = src
            .base_url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        let resolved = match (&base_url, &preset) {
            (Some(u), _) => u.clone(),
            (None, Some(p)) => presets::by_name(p)
                .ok_or_else(|| {
                    ApiError::bad(&field("preset"), format!("unknown preset `{p}`"))
                        .coded("unknown_preset")
                })?
                .base_url
                .to_owned(),
            (None, None) => {
                return Err(ApiError::bad(
                    &field("base_url"),
                    format!("required unless {at}.preset is given"),
                )
                .coded("required"));
            }
        };
        let file = SourceFile {
            preset,
            protocol,
            base_url,
            api_key: src.api_key,
            api_keys,
            balance: src.balance,
            model: src.model.trim().to_owned(),
            model_map: src.model_map,
            options: src.options,
            timeouts: src.timeouts,
            fallbacks,
        };
        Ok((file, resolved))
    }

    /// The request's routes as the file's, every field checked like the source's, and each
    /// source's address checked for `owner`.
    async fn route_files(
        &self,
        actor: &Actor,
        owner: Option<&str>,
        routes: Vec<RouteRequest>,
    ) -> Result<Vec<RouteFile>, ApiError> {
        let mut out = Vec::with_capacity(routes.len());
        for (i, r) in routes.into_iter().enumerate() {
            let at = format!("routes[{i}]");
            self.check_env_refs(actor, &[(format!("{at}.name"), r.name.as_deref())])?;
            if r.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(ApiError::bad(
                    &format!("{at}.name"),
                    "empty; leave it out to name the route by its index",
                ));
            }
            let when = route_when(&at, r.when)?;
            self.check_env_refs(
                actor,
                &[(format!("{at}.when.model"), when.model.as_deref())],
            )?;
            let (source, url) = self.source_file(actor, r.source, &format!("{at}.source"))?;
            self.check_egress(owner, &url, &format!("{at}.source.base_url"))
                .await?;
            self.check_fallbacks_egress(owner, &source.fallbacks, &format!("{at}.source"))
                .await?;
            out.push(RouteFile {
                name: r.name,
                when: Some(when),
                source,
            });
        }
        Ok(out)
    }

    /// `${VAR}` reads the proxy's environment, the operator's: refused in every field a
    /// non-admin sets (the proxy also refuses to load a non-admin's file that has one).
    fn check_env_refs<F: AsRef<str>>(
        &self,
        actor: &Actor,
        fields: &[(F, Option<&str>)],
    ) -> Result<(), ApiError> {
        if actor.admin {
            return Ok(());
        }
        match fields
            .iter()
            .find(|(_, v)| v.is_some_and(|v| v.contains("${")))
        {
            Some((field, _)) => Err(ApiError::bad(
                field.as_ref(),
                "environment references (${...}) are for admins only; give the value itself",
            )
            .coded("env_ref")),
            None => Ok(()),
        }
    }

    pub async fn create(&self, actor: &Actor, req: CreateRequest) -> Result<Issued, ApiError> {
        self.check_env_refs(
            actor,
            &[
                ("name", Some(req.name.as_str())),
                ("label", req.label.as_deref()),
                ("owner", req.owner.as_deref()),
            ],
        )?;
        if req.name.trim().is_empty() {
            return Err(ApiError::bad("name", "required").coded("required"));
        }
        let (src, base_url) = self.source_file(actor, req.source, "source")?;
        let owner = match (actor.admin, req.owner) {
            (true, Some(o)) => {
                let exists = self.users.current().get(&o).is_some();
                if !exists {
                    return Err(ApiError::bad("owner", format!("no user named `{o}`")));
                }
                Some(o)
            }
            (false, Some(o)) if o != actor.name => {
                return Err(ApiError::bad(
                    "owner",
                    "only an admin may create an adapter for another user",
                ));
            }
            _ => actor.is_user.then(|| actor.name.clone()),
        };
        self.check_egress(owner.as_deref(), &base_url, "source.base_url")
            .await?;
        self.check_fallbacks_egress(owner.as_deref(), &src.fallbacks, "source")
            .await?;
        let routes = self
            .route_files(actor, owner.as_deref(), req.routes)
            .await?;
        let owner_cap = match &owner {
            Some(o) if !self.users.current().is_admin(o) => {
                self.users.current().get(o).map(|u| u.max_adapters)
            }
            _ => None,
        };
        let spec = CreateSpec {
            name: req.name.trim().to_owned(),
            provider: src.preset,
            base_url: Some(base_url),
            api_key: Some(src.api_key).filter(|_| src.api_keys.is_empty()),
            api_keys: src.api_keys,
            model: src.model,
            label: req.label.filter(|l| !l.trim().is_empty()),
            protocol: src.protocol,
            model_map: src.model_map,
            options: src.options,
            balance: src.balance,
            fallbacks: src.fallbacks,
            routes,
            owner,
            owner_cap,
            ..CreateSpec::default()
        };
        let server = self.server.clone();
        let before = self.live.load().generation;
        let created = tokio::task::spawn_blocking(move || edit::create(&server, &spec))
            .await
            .map_err(|e| ApiError::new(500, format!("edit failed: {e}")))?
            .map_err(|e| match e {
                // A user learns nothing about names beyond "not available": not whether
                // another user's adapter has it.
                EditError::BadName(_) | EditError::Exists(_) if !actor.admin => {
                    ApiError::bad("name", NAME_NOT_AVAILABLE).coded("name_unavailable")
                }
                e => ApiError::from(e),
            })?;
        let name = name_of(&created.file);
        let issued = self.issued(&name, created.key, before).await?;
        let owner = issued.adapter.owner.clone().unwrap_or_default();
        audit::record(
            Event::new(Kind::AdapterCreate, &actor.name, &name).detail(format!(
                "owner={owner} key={}",
                issued.adapter.keys.last().map_or("", |k| k.id.as_str())
            )),
        );
        Ok(issued)
    }

    pub async fn rotate(
        &self,
        actor: &Actor,
        name: &str,
        req: RotateRequest,
        if_match: Option<&str>,
    ) -> Result<Issued, ApiError> {
        let entry = self.visible_entry(actor, name)?;
        self.check_env_refs(
            actor,
            &[
                ("label", req.label.as_deref()),
                ("new_label", req.new_label.as_deref()),
            ],
        )?;
        let grace = match req.grace.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(g) => Some(humantime::parse_duration(g).map_err(|e| ApiError::bad("grace", e))?),
        };
        let server = self.server.clone();
        let name_owned = name.to_owned();
        let version = if_match.map_or(entry.version, str::to_owned);
        let label = req.label.filter(|l| !l.is_empty());
        let new_label = req
            .new_label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        let before = self.live.load().generation;
        let (_, key) = blocking(move || {
            edit::rotate_checked(
                &server,
                &name_owned,
                grace,
                label.as_deref(),
                new_label.as_deref(),
                Some(&version),
            )
        })
        .await?;
        let issued = self.issued(name, key, before).await?;
        let new_key = issued.adapter.keys.last().map_or("", |k| k.id.as_str());
        audit::record(
            Event::new(Kind::KeyRotate, &actor.name, name).detail(format!(
                "new_key={new_key} grace={}",
                grace.map_or("none".into(), |g| humantime::format_duration(g).to_string())
            )),
        );
        Ok(issued)
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), ApiError> {
        let entry = self.visible_entry(actor, name)?;
        let server = self.server.clone();
        let name_owned = name.to_owned();
        let version = if_match.map_or(entry.version, str::to_owned);
        blocking(move || edit::delete_checked(&server, &name_owned, Some(&version))).await?;
        self.applied(|s| s.adapter(name).is_none()).await;
        let owner = entry.owner.unwrap_or_default();
        audit::record(
            Event::new(Kind::AdapterDelete, &actor.name, name).detail(format!("owner={owner}")),
        );
        Ok(())
    }

    /// Revokes one issued key (by [`KeyView::id`]) at once.
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        name: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<AdapterView, ApiError> {
        let entry = self.visible_entry(actor, name)?;
        let (server, name_owned, id) = (self.server.clone(), name.to_owned(), id.to_owned());
        let version = if_match.map_or(entry.version, str::to_owned);
        let before = self.live.load().generation;
        let key = id.clone();
        blocking(move || edit::revoke_key(&server, &name_owned, &id, Some(&version))).await?;
        self.applied(|s| s.generation > before).await;
        audit::record(Event::new(Kind::KeyRevoke, &actor.name, name).detail(format!("key={key}")));
        self.current_view(name)
    }

    /// Sets or removes one issued key's label.
    pub async fn relabel_key(
        &self,
        actor: &Actor,
        name: &str,
        id: &str,
        req: KeyPatchRequest,
        if_match: Option<&str>,
    ) -> Result<AdapterView, ApiError> {
        let entry = self.visible_entry(actor, name)?;
        self.check_env_refs(actor, &[("label", req.label.as_deref())])?;
        let label = req
            .label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        let (server, name_owned, id) = (self.server.clone(), name.to_owned(), id.to_owned());
        let version = if_match.map_or(entry.version, str::to_owned);
        let before = self.live.load().generation;
        let key = id.clone();
        blocking(move || {
            edit::relabel_key(&server, &name_owned, &id, label.as_deref(), Some(&version))
        })
        .await?;
        self.applied(|s| s.generation > before).await;
        audit::record(
            Event::new(Kind::KeyChange, &actor.name, name).detail(format!("key={key} label")),
        );
        self.current_view(name)
    }

    /// The adapter as it is loaded now, with its file's version.
    fn current_view(&self, name: &str) -> Result<AdapterView, ApiError> {
        let version = edit::entry(&self.server, name)
            .map(|e| e.version)
            .unwrap_or_default();
        let snapshot = self.live.load();
        let adapter = snapshot
            .adapter(name)
            .ok_or_else(|| ApiError::new(500, "the edited adapter did not load"))?;
        Ok(self.view(adapter, version))
    }

    pub async fn patch(
        &self,
        actor: &Actor,
        name: &str,
        req: PatchRequest,
        if_match: Option<&str>,
    ) -> Result<AdapterView, ApiError> {
        let entry = self.visible_entry(actor, name)?;
        let changed = patched_fields(&req);
        let mut fields = vec![
            ("model", req.model.as_deref()),
            ("api_key", req.api_key.as_deref()),
            ("base_url", req.base_url.as_deref()),
        ];
        for rule in req.model_map.iter().flatten() {
            fields.push(("model_map", Some(&rule.pattern)));
            fields.push(("model_map", Some(&rule.model)));
        }
        self.check_env_refs(actor, &fields)?;
        if let Some(k) = &req.api_key {
            self.check_api_key(actor, "source.api_key", k)?;
        }
        if let Some(pool) = &req.api_keys {
            if req.api_key.is_some() {
                return Err(ApiError::bad(
                    "api_keys",
                    "give api_key (one key) or api_keys (a pool), not both",
                ));
            }
            self.check_pool(actor, "api_keys", pool)?;
        }
        if let Some(u) = &req.base_url {
            self.check_egress(entry.owner.as_deref(), u, "source.base_url")
                .await?;
        }
        if req.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(ApiError::bad("model", "must not be empty").coded("required"));
        }
        let routes = match req.routes {
            None => None,
            Some(routes) => Some(
                self.route_files(actor, entry.owner.as_deref(), routes.unwrap_or_default())
                    .await?,
            ),
        };
        let fallbacks = match req.fallbacks {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for (i, fb) in list.unwrap_or_default().into_iter().enumerate() {
                    let at = format!("source.fallbacks[{i}]");
                    out.push(self.source_file_in(actor, fb, &at, true)?.0);
                }
                self.check_fallbacks_egress(entry.owner.as_deref(), &out, "source")
                    .await?;
                Some(out)
            }
        };
        let spec = PatchSpec {
            balance: req.balance,
            fallbacks,
            model: req.model,
            model_map: req.model_map,
            limits: req.limits,
            api_key: req.api_key,
            api_keys: req.api_keys,
            base_url: req.base_url,
            routes,
        };
        let server = self.server.clone();
        let name_owned = name.to_owned();
        let version = if_match.map_or(entry.version, str::to_owned);
        let before = self.live.load().generation;
        let path =
            blocking(move || edit::patch(&server, &name_owned, &spec, Some(&version))).await?;
        self.applied(|s| s.generation > before).await;
        audit::record(Event::new(Kind::AdapterChange, &actor.name, name).detail(changed));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let snapshot = self.live.load();
        let adapter = snapshot
            .adapter(name)
            .ok_or_else(|| ApiError::new(500, "the edited adapter did not load"))?;
        Ok(self.view(adapter, edit::version_of(&text)))
    }

    /// Sends a one-token request to the adapter's source.
    pub async fn probe(&self, actor: &Actor, name: &str) -> Result<ProbeResult, ApiError> {
        self.visible_entry(actor, name)?;
        let snapshot = self.live.load();
        let adapter = snapshot
            .adapter(name)
            .ok_or_else(|| ApiError::new(404, format!("adapter `{name}` is not loaded")))?;
        let policy = self
            .restricted(adapter.owner.as_deref())
            .then_some(&self.server.egress);
        let result = probe::probe(&adapter.source, policy).await;
        // The Test is a real request: a provider it cannot reach is failing (a 4xx says
        // nothing about reachability and leaves the status alone).
        let failure = match (result.ok, result.status) {
            (true, _) => Some(None),
            (false, Some(s)) if s >= 500 || s == 429 => Some(Some(FailureReason::Http(s))),
            (false, Some(_)) => None,
            (false, None) => Some(Some(result.reason.unwrap_or(FailureReason::Connect))),
        };
        if let Some(failure) = failure {
            adapter.outcome.record(failure, SystemTime::now());
        }
        Ok(result)
    }

    /// The usage page's data for `actor` (everyone's for an admin): `bucket`-wide rows since
    /// `since` ago, the latest `recent` requests, and the adapters the actor has now (the
    /// others in the rows were deleted). `None` when statistics are off.
    pub async fn usage(
        &self,
        actor: &Actor,
        since: Duration,
        bucket: Duration,
        recent: usize,
    ) -> Option<Result<UsageData, String>> {
        let stats = self.server.stats.as_ref()?;
        let current: Vec<String> = self.list(actor).into_iter().map(|a| a.name).collect();
        let scope = UsageScope {
            owner: (!actor.admin).then(|| actor.name.clone()),
            adapters: current.clone(),
        };
        let data = async {
            Ok(UsageData {
                rows: usage_view::buckets(stats, since, bucket, &scope).await?,
                // The CSV export asks for none: no query for it.
                recent: if recent == 0 {
                    Vec::new()
                } else {
                    usage_view::recent(stats, recent, &scope).await?
                },
                current,
            })
        };
        Some(data.await)
    }

    pub fn users(&self) -> Vec<UserView> {
        let files = edit::entries(&self.server.adapters_dir).unwrap_or_default();
        self.users
            .current()
            .users
            .iter()
            .map(|u| UserView {
                name: u.name.clone(),
                admin: u.admin,
                status: u.status.as_str(),
                max_adapters: u.max_adapters,
                owned: files
                    .iter()
                    .filter(|f| f.owner.as_deref() == Some(u.name.as_str()))
                    .count(),
                quota: u.quota,
            })
            .collect()
    }

    /// Sets a user's cap (admins only).
    pub async fn set_cap(&self, actor: &Actor, user: &str, max: usize) -> Result<(), ApiError> {
        if !actor.admin {
            return Err(ApiError::new(403, "only an admin may change caps"));
        }
        let path = self.users.path().to_owned();
        let target = user.to_owned();
        blocking(move || users::update(&path, &target, None, None, Some(max))).await?;
        self.users.refresh_now();
        audit::record(
            Event::new(Kind::UserChange, &actor.name, user).detail(format!("max_adapters={max}")),
        );
        Ok(())
    }

    /// The actor's adapter's file entry; someone else's adapter is "not found" (its
    /// existence is not theirs to learn).
    /// The adapter's file as written (keys included: for edits made on the server, never
    /// for a listing) and its version.
    pub fn adapter_file(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(AdapterFile, String), ApiError> {
        let entry = self.visible_entry(actor, name)?;
        let text = std::fs::read_to_string(&entry.path)
            .map_err(|_| ApiError::new(500, format!("adapter `{name}` cannot be read")))?;
        let file = serde_yaml_ng::from_str(&text).map_err(|_| {
            ApiError::new(
                409,
                format!("adapter `{name}` does not parse; fix its file first"),
            )
        })?;
        Ok((file, edit::version_of(&text)))
    }

    /// 404 unless the actor may see the adapter (its owner, or an admin).
    pub fn check_visible(&self, actor: &Actor, name: &str) -> Result<(), ApiError> {
        self.visible_entry(actor, name).map(|_| ())
    }

    fn visible_entry(&self, actor: &Actor, name: &str) -> Result<edit::Entry, ApiError> {
        match edit::entry(&self.server, name) {
            Ok(e) if actor.sees(e.owner.as_deref()) => Ok(e),
            Ok(_) | Err(EditError::NotFound(..)) => {
                Err(ApiError::new(404, format!("no adapter named `{name}`")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Waits (bounded) until the proxy serves `key` on `name`, then describes the key.
    async fn issued(&self, name: &str, key: Secret, before: u64) -> Result<Issued, ApiError> {
        let hash = hash_key(key.expose());
        self.applied(|s| {
            s.generation > before
                && s.adapter(name)
                    .is_some_and(|a| a.keys.iter().any(|k| k.hash == hash))
        })
        .await;
        let text = edit::entry(&self.server, name)
            .map(|e| e.version)
            .unwrap_or_default();
        let snapshot = self.live.load();
        let adapter = snapshot
            .adapter(name)
            .ok_or_else(|| ApiError::new(500, format!("adapter `{name}` did not load")))?;
        let base = &self.server.public_base_url;
        Ok(Issued {
            api_key: key.expose().to_owned(),
            base_url: base.clone(),
            adapter: self.view(adapter, text),
            setup: client_setup(base, key.expose()),
        })
    }

    async fn applied(&self, done: impl Fn(&crate::config::snapshot::Snapshot) -> bool) {
        let deadline = Instant::now() + APPLY_DEADLINE;
        while !done(&self.live.load()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn name_of(path: &std::path::Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned()
}

/// File edits take a lock and fsync: off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EditError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, format!("edit failed: {e}")))?
        .map_err(ApiError::from)
}
