//! Single sign-on on the panel (issue #27): OpenID Connect providers (`oidc`) and GitHub
//! (`github`), one button each on the login page. A sign-in starts with a POST to
//! `/sso/<provider>` (the panel's origin check applies), which remembers the flow — `state`,
//! the PKCE verifier, the `nonce`, the redirect URI and a random value also set in an
//! `HttpOnly` cookie of this browser — for ten minutes, and sends the browser to the
//! provider. The provider sends it back to `/sso/<provider>/callback`, where the flow is
//! taken (once: a second use of the same `state` finds nothing), the browser's cookie must
//! match, and the provider module checks what came back. [`link`] then finds or makes the
//! account and a session is opened through the same `Sessions` as a password login.
//!
//! Flows live in this process, or with `limits.backend: redis` in Redis (sealed with a key
//! derived from the browser's flow cookie, taken with `GETDEL`), so the callback may reach any
//! instance; while Redis does not answer, a new flow stays in the instance that started it.
//! Nothing of a flow, a code or a token is logged; refusals are [`SsoError`] codes the login
//! page says in the user's language.

mod github;
pub mod link;
mod oidc;

use super::auth::random_token;
use super::sessions_redis::RedisSessions;
use crate::config::keys::{KeyHash, hash_hex, hash_key};
use crate::config::sso::SsoConfig;
use crate::proxy::shared_limits::SharedLimiter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie tying a flow to the browser that started it.
pub const FLOW_COOKIE: &str = "fp_sso";
/// How long a started sign-in may take at the provider.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Flows kept at most: older ones are forgotten first.
const MAX_FLOWS: usize = 10_000;

/// Why a sign-in was refused: the code's words are `err_sso_<code>` in the panel's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsoError {
    /// No such provider configured.
    UnknownProvider,
    /// Unknown, used, expired or another browser's `state`.
    State,
    /// The user or the provider said no (`error=` on the callback).
    Denied,
    /// The provider did not answer, or not as a provider should.
    ProviderDown,
    /// The provider refused the code (replayed, expired, another client's).
    CodeRefused,
    /// The ID token failed a check: signature, issuer, audience, expiry or nonce.
    TokenInvalid,
    /// The verified email is not in `allowed_domains` (or there is none).
    DomainNotAllowed,
    /// Not an active member of any of `allowed_orgs`.
    OrgNotAllowed,
    /// `registration: closed` and no account is linked to this identity.
    RegistrationClosed,
    /// `registration: invite` and the provider admits anyone: an admin must make the account.
    InviteOnly,
    /// The account waits for an admin's approval (`new`: it was made just now).
    Pending {
        new: bool,
    },
    Disabled,
    /// The users file could not be written (the log says why).
    Saving,
}

impl SsoError {
    pub fn code(self) -> &'static str {
        match self {
            SsoError::UnknownProvider => "sso_unknown",
            SsoError::State => "sso_state",
            SsoError::Denied => "sso_denied",
            SsoError::ProviderDown => "sso_provider_down",
            SsoError::CodeRefused => "sso_code_refused",
            SsoError::TokenInvalid => "sso_token_invalid",
            SsoError::DomainNotAllowed => "sso_domain",
            SsoError::OrgNotAllowed => "sso_org",
            SsoError::RegistrationClosed => "sso_closed",
            SsoError::InviteOnly => "sso_invite_only",
            SsoError::Pending { new: true } => "sso_pending_new",
            SsoError::Pending { new: false } => "sso_pending",
            SsoError::Disabled => "sso_disabled",
            SsoError::Saving => "sso_saving",
        }
    }

    /// Every code, for the translations test.
    pub const ALL: &[SsoError] = &[
        SsoError::UnknownProvider,
        SsoError::State,
        SsoError::Denied,
        SsoError::ProviderDown,
        SsoError::CodeRefused,
        SsoError::TokenInvalid,
        SsoError::DomainNotAllowed,
        SsoError::OrgNotAllowed,
        SsoError::RegistrationClosed,
        SsoError::InviteOnly,
        SsoError::Pending { new: true },
        SsoError::Pending { new: false },
        SsoError::Disabled,
        SsoError::Saving,
    ];

    pub fn from_code(code: &str) -> Option<SsoError> {
        SsoError::ALL.iter().copied().find(|e| e.code() == code)
    }
}

/// A provider's answer to "start": where to send the browser and what to keep.
pub(crate) struct Started {
    location: String,
    state: String,
    verifier: String,
    nonce: Option<String>,
}

/// Who signed in, as the provider vouched for it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `oidc:<name>` or `github`.
    pub provider: String,
    pub subject: String,
    /// A verified email, if the provider gave one.
    pub email: Option<String>,
    /// A name for a new account (`preferred_username`, the GitHub login).
    pub name_hint: String,
    /// In one of `admin_groups` (`None`: the provider has none, so it says nothing either way).
    pub admin: Option<bool>,
    /// The provider only admits some (`allowed_domains`, `allowed_orgs`): with
    /// `registration: invite` that counts as an invitation.
    pub restricted: bool,
}

/// What a sign-in under way keeps until its callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    verifier: String,
    nonce: Option<String>,
    redirect_uri: String,
}

/// A flow kept in this process, with the hash of its browser's cookie.
struct LocalFlow {
    flow: Flow,
    browser: KeyHash,
    expires: Instant,
}

/// The configured providers and the sign-ins under way.
pub struct Sso {
    config: SsoConfig,
    flows: Mutex<HashMap<String, LocalFlow>>,
    /// Flows every instance sharing this Redis can finish.
    shared: Option<RedisSessions>,
    http: reqwest::Client,
}

impl Sso {
    pub fn new(config: SsoConfig) -> Sso {
        let http = reqwest::Client::builder()
            // A provider's answers are read as they come: no following elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Sso {
            config,
            flows: Mutex::default(),
            shared: None,
            http,
        }
    }

    /// Keeps sign-ins under way in `limiter`'s Redis: any instance finishes them.
    pub fn share_flows(&mut self, limiter: Arc<SharedLimiter>) {
        self.shared = Some(RedisSessions::new(limiter));
    }

    /// The login page's buttons: (provider id as in paths, label).
    pub fn buttons(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .config
            .oidc
            .iter()
            .map(|p| (p.name.clone(), p.name.clone()))
            .collect();
        if self.config.github.is_some() {
            out.push(("github".into(), "GitHub".into()));
        }
        out
    }

    /// The provider id (`oidc:<name>`, `github`) of a path's provider, if configured.
    pub fn provider_id(&self, provider: &str) -> Option<String> {
        self.config
            .provider_ids()
            .into_iter()
            .find(|id| id.strip_prefix("oidc:").unwrap_or(id) == provider)
    }

    /// The callback URL registered at the provider: `accounts.panel_url`, else this
    /// request's scheme and `Host`.
    pub fn redirect_uri(&self, provider: &str, host: Option<&str>, secure: bool) -> String {
        let base = match (&self.config.panel_url, host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => {
                format!("{}://{host}", if secure { "https" } else { "http" })
            }
            (None, None) => "http://localhost".into(),
        };
        format!("{base}/sso/{provider}/callback")
    }

    /// Starts a sign-in at `provider` (a path segment: an OIDC provider's name or `github`):
    /// the provider's URL and the value of the browser's flow cookie.
    pub async fn start(
        &self,
        provider: &str,
        redirect_uri: &str,
    ) -> Result<(String, String), SsoError> {
        let started = if provider == "github" {
            let github = self
                .config
                .github
                .as_ref()
                .ok_or(SsoError::UnknownProvider)?;
            github::start(github, redirect_uri)?
        } else {
            let p = self
                .config
                .oidc
                .iter()
                .find(|p| p.name == provider)
                .ok_or(SsoError::UnknownProvider)?;
            oidc::start(p, redirect_uri, &self.http).await?
        };
        let browser = random_token();
        let flow = Flow {
            provider: provider.to_owned(),
            verifier: started.verifier,
            nonce: started.nonce,
            redirect_uri: redirect_uri.to_owned(),
        };
        if let Some(shared) = &self.shared {
            let plain = serde_json::to_vec(&flow).map_err(|_| SsoError::Saving)?;
            let id = hash_hex(&hash_key(&started.state));
            match shared.put_flow(&id, &browser, &plain, FLOW_TTL).await {
                Ok(()) => return Ok((started.location, browser)),
                Err(e) => tracing::warn!(
                    error = %e,
                    "single sign-on: Redis does not answer; this sign-in can only finish on this instance"
                ),
            }
        }
        self.keep_here(started.state, flow, &browser);
        Ok((started.location, browser))
    }

    fn keep_here(&self, state: String, flow: Flow, browser: &str) {
        let now = Instant::now();
        let mut flows = crate::lock(&self.flows);
        flows.retain(|_, f| f.expires > now);
        if flows.len() >= MAX_FLOWS
            && let Some(oldest) = flows
                .iter()
                .min_by_key(|(_, f)| f.expires)
                .map(|(k, _)| k.clone())
        {
            flows.remove(&oldest);
        }
        let browser = hash_key(browser);
        let expires = now + FLOW_TTL;
        flows.insert(
            state,
            LocalFlow {
                flow,
                browser,
                expires,
            },
        );
    }

    /// Takes the flow of `state` — whatever follows, a state works once — if this browser
    /// started it and it has not expired.
    async fn take(&self, state: &str, browser: Option<&str>) -> Result<Flow, SsoError> {
        let local = crate::lock(&self.flows).remove(state);
        if let Some(local) = local {
            let same_browser = browser.is_some_and(|b| hash_key(b) == local.browser);
            if !same_browser || local.expires <= Instant::now() {
                return Err(SsoError::State);
            }
            return Ok(local.flow);
        }
        let shared = self.shared.as_ref().ok_or(SsoError::State)?;
        match shared.take_flow(&hash_hex(&hash_key(state)), browser).await {
            Ok(Some(Some(plain))) => serde_json::from_slice(&plain).map_err(|_| SsoError::State),
            Ok(_) => Err(SsoError::State),
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on: Redis does not answer; the sign-in cannot finish");
                Err(SsoError::State)
            }
        }
    }

    /// The provider's answer on `/sso/<provider>/callback`: who signed in.
    pub async fn finish(
        &self,
        provider: &str,
        query: &[(String, String)],
        browser: Option<&str>,
    ) -> Result<Verified, SsoError> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let state = get("state").ok_or(SsoError::State)?;
        let flow = self.take(state, browser).await?;
        if flow.provider != provider {
            return Err(SsoError::State);
        }
        if get("error").is_some() {
            return Err(SsoError::Denied);
        }
        let code = get("code")
            .filter(|c| !c.is_empty())
            .ok_or(SsoError::Denied)?;
        if provider == "github" {
            let github = self
                .config
                .github
                .as_ref()
                .ok_or(SsoError::UnknownProvider)?;
            return github::finish(github, &flow.redirect_uri, code, flow.verifier, &self.http)
                .await;
        }
        let p = self
            .config
            .oidc
            .iter()
            .find(|p| p.name == provider)
            .ok_or(SsoError::UnknownProvider)?;
        let nonce = flow.nonce.as_deref().ok_or(SsoError::State)?;
        oidc::finish(
            p,
            &flow.redirect_uri,
            code,
            flow.verifier,
            nonce,
            &self.http,
        )
        .await
    }
}

/// The `Set-Cookie` value of the flow cookie (`SameSite=Lax`: it must come back on the
/// provider's redirect, a top-level navigation from another site), or its removal.
pub fn flow_cookie(value: Option<&str>, secure: bool) -> String {
    let mut c = cookie::Cookie::build((FLOW_COOKIE, value.unwrap_or_default().to_owned()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .path("/sso/");
    c = match value {
        Some(_) => c.max_age(cookie::time::Duration::seconds(FLOW_TTL.as_secs() as i64)),
        None => c.max_age(cookie::time::Duration::ZERO),
    };
    c.build().to_string()
}
