//! The admin listener (default 127.0.0.1:9787), separate from client traffic: Prometheus
//! `/metrics` and `/health` for anyone who can reach it; `/admin/stats` and `/admin/adapters`
//! with the admin token (`Authorization: Bearer <token>`, checked against its SHA-256 like
//! client keys); the management API `/admin/api/*` (`api`) with the token or a panel
//! session; and the panel (`panel`) everywhere else. What API and panel do is in `manage`.

pub mod account_ops;
pub mod accounts;
pub mod api;
mod api_accounts;
pub mod api_inspect;
pub mod auth;
pub mod charts;
pub mod edits;
pub mod i18n;
pub mod manage;
pub mod panel;
pub mod password;
pub mod probe;
mod sessions_redis;
pub mod sso;

use crate::config::keys::{KeyHash, hash_key};
use crate::config::server::ServerConfig;
use crate::config::users::{UsersStore, verify_password};
use crate::config::watch::LiveConfig;
use crate::telemetry::Telemetry;
use crate::telemetry::audit::{self, Event, Kind};
use crate::telemetry::usage::{GroupBy, totals};
use async_trait::async_trait;
use auth::{LoginLimiter, Sessions};
use http::Response;
use manage::{Actor, Manager};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub struct AdminApp {
    pub telemetry: Arc<Telemetry>,
    pub live: LiveConfig,
    pub token: Option<KeyHash>,
    pub stats: Option<crate::config::server::StatsConfig>,
    pub manager: Manager,
    pub sessions: Sessions,
    pub logins: LoginLimiter,
    /// Sign-ups per client address (and per name asked for).
    pub signups: LoginLimiter,
    /// Where this server's audit events go (`None`: the process log only).
    pub audit_log: Option<audit::AuditLog>,
    /// Mark cookies `Secure` (TLS on the admin listener, or in front of it).
    pub secure_cookies: bool,
    /// The per-user quotas the proxy enforces (`/admin/api/me` shows their usage).
    pub quotas: Option<Arc<crate::proxy::user_quota::Quotas>>,
    /// Single sign-on providers and the sign-ins under way.
    pub sso: sso::Sso,
}

/// Largest request body the admin listener reads.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

/// A logged-in panel user on this request.
#[derive(Debug, Clone)]
pub struct PanelSession {
    pub cookie: String,
    /// The session's public id (`auth::SessionMeta::id`), for "this session".
    pub session_id: String,
    pub actor: Actor,
    pub csrf: String,
}

/// A request to the admin listener, read whole.
#[derive(Debug, Clone)]
pub struct AdminRequest {
    pub method: http::Method,
    pub path: String,
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub session: Option<PanelSession>,
    pub client_ip: String,
    pub secure_cookies: bool,
}

impl AdminRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    Wrong,
    /// Too many failures: retry after this many seconds.
    RateLimited(u64),
    /// The password was right, but the account waits for an admin's approval.
    Pending,
    /// The password was right, but an admin disabled the account.
    Disabled,
}

/// A hash to verify against when the user does not exist: failed lookups take as long as
/// real ones, so timing does not tell which user names exist.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| crate::config::users::hash_password("not a password").unwrap_or_default())
        .clone()
}

/// The client's IP address as the audit log and the limits name it.
fn client_address(session: &ServerSession) -> String {
    session
        .client_addr()
        .and_then(|a| a.as_inet().map(|i| i.ip().to_string()))
        .unwrap_or_default()
}

pub fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

pub fn json_response(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

/// `since=24h&by=adapter` → its pairs.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl AdminApp {
    pub fn new(
        config: &ServerConfig,
        telemetry: Arc<Telemetry>,
        live: LiveConfig,
        users: Arc<UsersStore>,
    ) -> AdminApp {
        let admin = config.admin.clone();
        AdminApp {
            telemetry,
            token: admin.as_ref().and_then(|a| a.token_sha256),
            secure_cookies: admin.as_ref().is_some_and(|a| a.secure_cookies),
            stats: config.stats.clone(),
            manager: Manager {
                server: Arc::new(config.clone()),
                live: live.clone(),
                users,
            },
            live,
            sessions: Sessions::default(),
            logins: LoginLimiter::default(),
            signups: LoginLimiter::default(),
            audit_log: None,
            quotas: None,
            sso: sso::Sso::new(config.accounts.sso.clone()),
        }
    }

    /// The quotas of the proxy this panel belongs to.
    pub fn with_quotas(mut self, quotas: Arc<crate::proxy::user_quota::Quotas>) -> AdminApp {
        self.quotas = Some(quotas);
        self
    }

    /// [`Self::login_via`] the panel's login form.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<(String, String), LoginError> {
        self.login_via(user, password, client_ip, "form").await
    }

    /// Checks a user's password (Argon2id, off the async workers) and opens a session:
    /// the `Set-Cookie` value and the session's CSRF token. The sign-in, or its failure, is
    /// audited with `method` (`form`, `json`).
    pub async fn login_via(
        &self,
        user: &str,
        password: &str,
        client_ip: &str,
        method: &str,
    ) -> Result<(String, String), LoginError> {
        let result = self.check_login(user, password, client_ip).await;
        let known = self.manager.users.current().get(user).is_some();
        // A name that is no user's may be a password typed into the wrong field.
        let target = if known { user } else { "(unknown)" };
        let event = match &result {
            Ok(_) => Event::new(Kind::SignIn, user, user).detail(format!("method={method}")),
            Err(e) => {
                let why = match e {
                    LoginError::Wrong => "wrong_password",
                    LoginError::RateLimited(_) => "rate_limited",
                    LoginError::Pending => "pending",
                    LoginError::Disabled => "disabled",
                };
                Event::new(Kind::SignInFailed, "(anonymous)", target)
                    .detail(format!("method={method} reason={why}"))
            }
        };
        audit::record(event.client(client_ip));
        result
    }

    async fn check_login(
        &self,
        user: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<(String, String), LoginError> {
        // Reserved before the (slow) check, so concurrent guesses cannot all get through.
        let attempt = self
            .logins
            .reserve(client_ip, user)
            .map_err(LoginError::RateLimited)?;
        let found = self.manager.users.current().get(user).cloned();
        let stored = found.as_ref().map(|u| u.password.clone());
        let hash = stored.clone().unwrap_or_else(dummy_hash);
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        match stored {
            Some(_) if ok && found.as_ref().is_some_and(|u| !u.status.is_active()) => {
                // The right password: not a guess, so it does not count against the limit.
                self.logins.succeeded(attempt);
                tracing::warn!(
                    user,
                    client = client_ip,
                    "panel login of an inactive account"
                );
                match found.map(|u| u.status) {
                    Some(crate::config::users::UserStatus::Pending) => Err(LoginError::Pending),
                    _ => Err(LoginError::Disabled),
                }
            }
            Some(credential) if ok => {
                self.logins.succeeded(attempt);
                let (cookie, csrf) = self.sessions.create(user, &credential).await;
                tracing::info!(user, "panel login");
                Ok((auth::session_cookie(&cookie, self.secure_cookies), csrf))
            }
            _ => {
                // A name that is no user's may be a password typed into the wrong field.
                let user = if found.is_some() { user } else { "(unknown)" };
                tracing::warn!(user, client = client_ip, "panel login failed");
                Err(LoginError::Wrong)
            }
        }
    }

    /// Ends the session; returns the `Set-Cookie` value that clears it in the browser.
    pub async fn logout(&self, cookie: &str) -> String {
        self.sessions.remove(cookie).await;
        auth::expired_session_cookie(self.secure_cookies)
    }

    /// The logged-in user of this request's session cookie, if the user still exists with
    /// the password they logged in with.
    async fn panel_session(&self, headers: &http::HeaderMap) -> Option<PanelSession> {
        let cookie = auth::cookie_value(headers, auth::SESSION_COOKIE)?;
        let info = self.sessions.get(&cookie).await?;
        let actor = |users: &crate::config::users::UsersFile| {
            users
                .get(&info.user)
                .filter(|u| u.password == info.credential && u.status.is_active())
                .map(Actor::user)
        };
        // Another instance may have written the users file within the last second (an account
        // made by a sign-in there, a password changed): read it again before ending the session.
        let found = actor(&self.manager.users.current()).or_else(|| {
            self.manager.users.refresh_now();
            actor(&self.manager.users.current())
        });
        match found {
            Some(actor) => Some(PanelSession {
                cookie,
                session_id: info.id,
                actor,
                csrf: info.csrf,
            }),
            None => {
                self.sessions.remove(&cookie).await;
                None
            }
        }
    }

    async fn read(
        &self,
        session: &mut ServerSession,
    ) -> Result<AdminRequest, Box<Response<Vec<u8>>>> {
        let header = session.req_header();
        let method = header.method.clone();
        let path = header.uri.path().to_owned();
        let query = header.uri.query().unwrap_or("").to_owned();
        let mut headers = header.headers.clone();
        // HTTP/2 carries the host as `:authority`; the origin checks read it as `Host`.
        if !headers.contains_key(http::header::HOST)
            && let Some(authority) = header.uri.authority()
            && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
        {
            headers.insert(http::header::HOST, value);
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_ADMIN_BODY {
                        return Err(Box::new(json_response(
                            413,
                            json!({"error": "request body over 1 MiB"}),
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(Box::new(json_response(
                        400,
                        json!({"error": "cannot read the request body"}),
                    )));
                }
            }
        }
        let client_ip = client_address(session);
        Ok(AdminRequest {
            session: self.panel_session(&headers).await,
            method,
            path,
            query,
            headers,
            body,
            client_ip,
            secure_cookies: self.secure_cookies,
        })
    }

    fn authorized(&self, session: &ServerSession) -> Result<(), Box<Response<Vec<u8>>>> {
        let Some(expected) = self.token else {
            return Err(Box::new(json_response(
                403,
                json!({"error": "the admin endpoints are disabled: set admin.token_sha256 in the server config"}),
            )));
        };
        let presented = session
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| hash_key(t.trim()));
        if presented == Some(expected) {
            Ok(())
        } else {
            Err(Box::new(json_response(
                401,
                json!({"error": "missing or wrong admin token"}),
            )))
        }
    }

    async fn stats(&self, query_string: &str) -> Response<Vec<u8>> {
        let Some(stats) = &self.stats else {
            return json_response(
                404,
                json!({"error": "usage statistics are disabled (stats.enabled: false)"}),
            );
        };
        let since =
            match humantime::parse_duration(query_param(query_string, "since").unwrap_or("24h")) {
                Ok(d) => d,
                Err(e) => return json_response(400, json!({"error": format!("since: {e}")})),
            };
        let Some(by) = GroupBy::parse(query_param(query_string, "by").unwrap_or("adapter")) else {
            return json_response(
                400,
                json!({"error": "by: one of adapter, key, model, day, instance"}),
            );
        };
        match totals(stats, since, by).await {
            Ok(rows) => json_response(
                200,
                json!({"since_seconds": since.as_secs(), "by": by,
                       "currency": self.telemetry.prices.currency, "totals": rows}),
            ),
            Err(e) => json_response(500, json!({"error": e})),
        }
    }

    fn adapters(&self) -> Response<Vec<u8>> {
        let snapshot = self.live.load();
        let adapters: Vec<serde_json::Value> = snapshot
            .adapters
            .iter()
            .map(|a| {
                json!({"name": a.name, "source_host": a.source.endpoint.host_header(),
                    "model": a.source.model, "keys": a.keys.len()})
            })
            .collect();
        json_response(
            200,
            json!({"generation": snapshot.generation, "adapters": adapters}),
        )
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // What this request does is audited with its client's address.
        let info = audit::RequestInfo {
            client: client_address(session),
            user_agent: session
                .req_header()
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(512)
                .collect(),
        };
        audit::with_request(info, self.audit_log.clone(), self.answer(session)).await
    }
}

impl AdminApp {
    async fn answer(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let uri = session.req_header().uri.clone();
        let path = uri.path();
        let query_string = uri.query().unwrap_or("");
        match path {
            "/metrics" => {
                let m = &self.telemetry.metrics;
                m.access_log_dropped
                    .set(self.telemetry.access_log.dropped() as i64);
                respond(200, "text/plain; version=0.0.4", m.render())
            }
            "/health" | "/healthz" => json_response(200, json!({"status": "ok"})),
            "/admin/stats" => match self.authorized(session) {
                Ok(()) => self.stats(query_string).await,
                Err(r) => *r,
            },
            "/admin/adapters" => match self.authorized(session) {
                Ok(()) => self.adapters(),
                Err(r) => *r,
            },
            _ => {
                let request = match self.read(session).await {
                    Ok(r) => r,
                    Err(r) => return *r,
                };
                if path.starts_with("/admin/") {
                    api::handle(self, &request).await
                } else {
                    panel::handle(self, &request).await
                }
            }
        }
    }
}

/// The default window of `/admin/stats`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);
