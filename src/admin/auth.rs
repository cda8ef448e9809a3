//! Panel sessions and logins. A session is a random 256-bit cookie value (HttpOnly,
//! SameSite=Strict, Secure over TLS) mapped in memory — or in Redis for every instance
//! (`sessions_redis`) — to its user, a CSRF token that every
//! state-changing request must echo, and a one-time "flash" holding a new key until the
//! key page shows it. Failed logins are limited per client address and per user name.

use super::manage::Issued;
use super::sessions_redis::{RedisSessions, StoredSession};
use crate::config::keys::{KeyHash, hash_hex, hash_key};
use crate::proxy::shared_limits::SharedLimiter;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "fp_session";
/// A session ends this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per client address, and per user name, in [`LOGIN_WINDOW`].
pub const MAX_LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);

struct Session {
    user: String,
    csrf: String,
    /// The password hash at login: a password changed since ends the session.
    credential: String,
    expires: Instant,
    flash: Option<Flash>,
    meta: SessionMeta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    pub csrf: String,
    pub credential: String,
    /// [`SessionMeta::id`].
    pub id: String,
}

/// What the account page shows of a session: when and from where it was opened and when it
/// was last used. Its `id` is random, neither the cookie nor derived from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    #[serde(default)]
    pub id: String,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_ms: i64,
    #[serde(default)]
    pub last_seen_ms: i64,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub user_agent: String,
}

/// How stale a shared session's "last seen" may get before a request writes it again.
const TOUCH_EVERY_MS: i64 = 60_000;

impl SessionMeta {
    /// A new session's, opened by the admin request being answered.
    fn now() -> SessionMeta {
        let request = crate::telemetry::audit::current_request();
        let now = crate::telemetry::usage::now_ms();
        let mut id = random_token();
        id.truncate(22);
        SessionMeta {
            id,
            created_ms: now,
            last_seen_ms: now,
            client: request.client,
            user_agent: request.user_agent,
        }
    }
}

/// A new key waiting for its page: what the page shows, nothing more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub adapter: String,
    pub api_key: String,
    pub base_url: String,
    pub model: String,
    pub setup: serde_json::Value,
}

impl Flash {
    pub fn of(issued: &Issued) -> Flash {
        Flash {
            adapter: issued.adapter.name.clone(),
            api_key: issued.api_key.clone(),
            base_url: issued.base_url.clone(),
            model: issued.adapter.model.clone(),
            setup: issued.setup.clone(),
        }
    }
}

/// Sessions by the SHA-256 of their cookie value: in this process's memory, or in Redis for
/// every instance when the limits are shared (`limits.backend: redis`). While Redis does not
/// answer, new sessions are kept in memory (this instance only) and the log says so.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<KeyHash, Session>>,
    shared: Option<RedisSessions>,
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS CSPRNG does not fail on Linux once booted; an all-zero token would still be
    // unguessable to no one, so refuse to go on rather than issue it.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// Sessions every instance sharing `limiter`'s Redis knows.
    pub fn shared(limiter: std::sync::Arc<SharedLimiter>) -> Sessions {
        Sessions {
            map: Mutex::default(),
            shared: Some(RedisSessions::new(limiter)),
        }
    }

    /// A new session for `user` (whose password hash is `credential`): its cookie value and
    /// CSRF token.
    pub async fn create(&self, user: &str, credential: &str) -> (String, String) {
        let cookie = random_token();
        let csrf = random_token();
        let hash = hash_key(&cookie);
        let meta = SessionMeta::now();
        if let Some(shared) = &self.shared {
            let stored = StoredSession {
                user: user.to_owned(),
                csrf: csrf.clone(),
                credential: credential.to_owned(),
                meta: meta.clone(),
            };
            match shared.put(&hash_hex(&hash), &stored, SESSION_TTL).await {
                Ok(()) => return (cookie, csrf),
                Err(e) => tracing::warn!(
                    error = %e,
                    "panel sessions: Redis did not answer; this session works on this instance only"
                ),
            }
        }
        let mut map = crate::lock(&self.map);
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(
            hash,
            Session {
                user: user.to_owned(),
                csrf: csrf.clone(),
                credential: credential.to_owned(),
                expires: now + SESSION_TTL,
                flash: None,
                meta,
            },
        );
        (cookie, csrf)
    }

    /// The live session of this cookie.
    pub async fn get(&self, cookie: &str) -> Option<SessionInfo> {
        let key = hash_key(cookie);
        {
            let mut map = crate::lock(&self.map);
            match map.get_mut(&key) {
                Some(s) if s.expires > Instant::now() => {
                    s.meta.last_seen_ms = crate::telemetry::usage::now_ms();
                    return Some(SessionInfo {
                        user: s.user.clone(),
                        csrf: s.csrf.clone(),
                        credential: s.credential.clone(),
                        id: s.meta.id.clone(),
                    });
                }
                Some(_) => {
                    map.remove(&key);
                    return None;
                }
                None => {}
            }
        }
        let shared = self.shared.as_ref()?;
        let id = hash_hex(&key);
        match shared.get(&id).await {
            Ok(found) => {
                let mut s = found?;
                let now = crate::telemetry::usage::now_ms();
                if now - s.meta.last_seen_ms >= TOUCH_EVERY_MS {
                    s.meta.last_seen_ms = now;
                    if let Err(e) = shared.touch(&id, &s).await {
                        tracing::warn!(error = %e, "panel sessions: cannot note a session's use");
                    }
                }
                Some(SessionInfo {
                    user: s.user,
                    csrf: s.csrf,
                    credential: s.credential,
                    id: s.meta.id,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "panel sessions: Redis did not answer; not logged in");
                None
            }
        }
    }

    pub async fn remove(&self, cookie: &str) {
        let key = hash_key(cookie);
        crate::lock(&self.map).remove(&key);
        if let Some(shared) = &self.shared
            && let Err(e) = shared.remove(&hash_hex(&key)).await
        {
            tracing::warn!(error = %e, "panel sessions: cannot end a session in Redis");
        }
    }

    /// Ends every session of a user (deleted, disabled, or password changed elsewhere), on
    /// every instance when sessions are shared.
    pub async fn remove_user(&self, user: &str) {
        crate::lock(&self.map).retain(|_, s| s.user != user);
        if let Some(shared) = &self.shared
            && let Err(e) = shared.remove_user(user).await
        {
            tracing::warn!(error = %e, user, "panel sessions: cannot end the user's sessions in Redis");
        }
    }

    /// The live sessions of `user`, newest first (on every instance when shared).
    pub async fn list(&self, user: &str) -> Vec<SessionMeta> {
        let now = Instant::now();
        let mut found: Vec<SessionMeta> = crate::lock(&self.map)
            .values()
            .filter(|s| s.user == user && s.expires > now)
            .map(|s| s.meta.clone())
            .collect();
        if let Some(shared) = &self.shared {
            match shared.list_user(user).await {
                Ok(stored) => found.extend(stored.into_iter().map(|(_, s)| s.meta)),
                Err(e) => {
                    tracing::warn!(error = %e, "panel sessions: cannot list a user's sessions")
                }
            }
        }
        found.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
        found
    }

    /// Ends `user`'s session of this [`SessionMeta::id`]; false when they have none by it.
    pub async fn remove_id(&self, user: &str, id: &str) -> bool {
        let mut ended = false;
        crate::lock(&self.map).retain(|_, s| {
            let hit = s.user == user && s.meta.id == id;
            ended |= hit;
            !hit
        });
        if let Some(shared) = &self.shared {
            match shared.list_user(user).await {
                Ok(stored) => {
                    for (hash, _) in stored.into_iter().filter(|(_, s)| s.meta.id == id) {
                        match shared.remove(&hash).await {
                            Ok(()) => ended = true,
                            Err(e) => {
                                tracing::warn!(error = %e, "panel sessions: cannot end a session in Redis")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "panel sessions: cannot list a user's sessions")
                }
            }
        }
        ended
    }

    pub async fn set_flash(&self, cookie: &str, issued: &Issued) {
        let key = hash_key(cookie);
        let flash = Flash::of(issued);
        if let Some(s) = crate::lock(&self.map).get_mut(&key) {
            s.flash = Some(flash);
            return;
        }
        if let Some(shared) = &self.shared {
            let plain = serde_json::to_vec(&flash).unwrap_or_default();
            if let Err(e) = shared.set_flash(&hash_hex(&key), cookie, &plain).await {
                tracing::warn!(error = %e, "panel sessions: cannot keep the new key for its page");
            }
        }
    }

    /// The new key for `adapter`, once: taking it removes it.
    pub async fn take_flash(&self, cookie: &str, adapter: &str) -> Option<Flash> {
        let key = hash_key(cookie);
        {
            let mut map = crate::lock(&self.map);
            if let Some(s) = map.get_mut(&key) {
                if s.flash.as_ref()?.adapter != adapter {
                    return None;
                }
                return s.flash.take();
            }
        }
        let shared = self.shared.as_ref()?;
        let id = hash_hex(&key);
        let plain = shared.flash(&id, cookie).await.ok().flatten()?;
        let flash: Flash = serde_json::from_slice(&plain).ok()?;
        if flash.adapter != adapter {
            return None;
        }
        if let Err(e) = shared.drop_flash(&id).await {
            tracing::warn!(error = %e, "panel sessions: cannot drop a shown key from Redis");
        }
        Some(flash)
    }
}

/// Whether the presented CSRF token is the session's (compared as hashes: no timing hint).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && hash_key(p) == hash_key(expected))
}

/// Password checks per client address and per user name. An attempt is *reserved* before
/// the password is checked and counts until the window passes, unless it succeeds: so at most
/// [`MAX_LOGIN_FAILURES`] checks run per window whatever the concurrency (a limiter that
/// counted failures after the check would let every request already in flight through).
#[derive(Default)]
pub struct LoginLimiter {
    attempts: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A reserved password check; give it back with [`LoginLimiter::succeeded`].
#[derive(Debug)]
pub struct Attempt {
    id: u64,
    ip_key: String,
    user_key: String,
}

impl LoginLimiter {
    /// Reserves one password check for this address and name, or says in how many seconds
    /// one is allowed again.
    pub fn reserve(&self, ip: &str, user: &str) -> Result<Attempt, u64> {
        let ip_key = format!("ip:{ip}");
        let user_key = format!("user:{user}");
        let mut map = crate::lock(&self.attempts);
        let now = Instant::now();
        if map.len() > 100_000 {
            // Bounded memory under a spray of addresses: forget the quiet ones.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < LOGIN_WINDOW)
            });
        }
        let mut wait = None;
        for k in [&ip_key, &user_key] {
            let Some(q) = map.get_mut(k) else { continue };
            while q
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > LOGIN_WINDOW)
            {
                q.pop_front();
            }
            if q.len() >= MAX_LOGIN_FAILURES {
                let oldest = q.front().map_or(now, |(t, _)| *t);
                let secs = LOGIN_WINDOW
                    .saturating_sub(now.duration_since(oldest))
                    .as_secs()
                    + 1;
                wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
            }
        }
        if let Some(secs) = wait {
            return Err(secs);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for k in [&ip_key, &user_key] {
            map.entry(k.clone()).or_default().push_back((now, id));
        }
        Ok(Attempt {
            id,
            ip_key,
            user_key,
        })
    }

    /// The password was right: the attempt does not count, and the name's failures are
    /// forgotten.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = crate::lock(&self.attempts);
        if let Some(q) = map.get_mut(&attempt.ip_key) {
            q.retain(|(_, id)| *id != attempt.id);
        }
        map.remove(&attempt.user_key);
    }
}

/// The `Set-Cookie` value of a session cookie.
pub fn session_cookie(value: &str, secure: bool) -> String {
    cookie::Cookie::build((SESSION_COOKIE, value.to_owned()))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that ends the session cookie in the browser.
pub fn expired_session_cookie(secure: bool) -> String {
    cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_and_flash() {
        let s = Sessions::default();
        let (cookie, csrf) = s.create("alice", "h").await;
        assert_eq!(s.get(&cookie).await.unwrap().user, "alice");
        assert!(csrf_matches(&csrf, Some(&csrf)));
        assert!(!csrf_matches(&csrf, Some("other")) && !csrf_matches(&csrf, None));
        s.remove(&cookie).await;
        assert!(s.get(&cookie).await.is_none());
    }

    #[test]
    fn login_limiter_blocks_after_failures() {
        let l = LoginLimiter::default();
        for _ in 0..MAX_LOGIN_FAILURES {
            // Reserved and never given back: a failure.
            l.reserve("1.2.3.4", "bob").unwrap();
        }
        assert!(l.reserve("1.2.3.4", "carol").is_err(), "per address");
        assert!(l.reserve("5.6.7.8", "bob").is_err(), "per user");
        let ok = l.reserve("5.6.7.8", "carol").unwrap();
        l.succeeded(ok);
        for _ in 0..MAX_LOGIN_FAILURES - 1 {
            l.reserve("5.6.7.8", "carol").unwrap();
        }
        // The success did not count: a fifth check is allowed, a sixth is not.
        assert!(l.reserve("5.6.7.8", "dave").is_ok());
        assert!(l.reserve("5.6.7.8", "erin").is_err());
    }

    #[test]
    fn reservations_hold_under_concurrency() {
        let l = std::sync::Arc::new(LoginLimiter::default());
        let granted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (l, granted) = (l.clone(), granted.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        if l.reserve(&format!("10.0.0.{i}"), "bob").is_ok() {
                            granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(
            granted.load(std::sync::atomic::Ordering::SeqCst),
            MAX_LOGIN_FAILURES
        );
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let c = session_cookie("v", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!session_cookie("v", false).contains("Secure"));
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "a=1; fp_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
    }
}
