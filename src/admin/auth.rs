//! Panel sessions and logins. A session is a random 256-bit cookie value (HttpOnly,
//! SameSite=Strict, Secure over TLS) mapped in memory to its user, a CSRF token that every
//! state-changing request must echo, and a one-time "flash" holding a new key until the
//! key page shows it. Failed logins are limited per client address and per user name.

use super::manage::Issued;
use crate::config::keys::{KeyHash, hash_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    flash: Option<Issued>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    pub csrf: String,
    pub credential: String,
}

/// Sessions by the SHA-256 of their cookie value.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<KeyHash, Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS CSPRNG does not fail on Linux once booted; an all-zero token would still be
    // unguessable to no one, so refuse to go on rather than issue it.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// A new session for `user` (whose password hash is `credential`): its cookie value and
    /// CSRF token.
    pub fn create(&self, user: &str, credential: &str) -> (String, String) {
        let cookie = random_token();
        let csrf = random_token();
        let mut map = crate::lock(&self.map);
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(
            hash_key(&cookie),
            Session {
                user: user.to_owned(),
                csrf: csrf.clone(),
                credential: credential.to_owned(),
                expires: now + SESSION_TTL,
                flash: None,
            },
        );
        (cookie, csrf)
    }

    /// The live session of this cookie.
    pub fn get(&self, cookie: &str) -> Option<SessionInfo> {
        let mut map = crate::lock(&self.map);
        let key = hash_key(cookie);
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(SessionInfo {
                user: s.user.clone(),
                csrf: s.csrf.clone(),
                credential: s.credential.clone(),
            }),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, cookie: &str) {
        crate::lock(&self.map).remove(&hash_key(cookie));
    }

    /// Ends every session of a user (deleted, or password changed elsewhere).
    pub fn remove_user(&self, user: &str) {
        crate::lock(&self.map).retain(|_, s| s.user != user);
    }

    pub fn set_flash(&self, cookie: &str, issued: Issued) {
        if let Some(s) = crate::lock(&self.map).get_mut(&hash_key(cookie)) {
            s.flash = Some(issued);
        }
    }

    /// The new key for `adapter`, once: taking it removes it.
    pub fn take_flash(&self, cookie: &str, adapter: &str) -> Option<Issued> {
        let mut map = crate::lock(&self.map);
        let s = map.get_mut(&hash_key(cookie))?;
        if s.flash.as_ref()?.adapter.name != adapter {
            return None;
        }
        s.flash.take()
    }
}

/// Whether the presented CSRF token is the session's (compared as hashes: no timing hint).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && hash_key(p) == hash_key(expected))
}

/// Recent failed logins per client address and per user name.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Seconds until another attempt is allowed for this address or name, if blocked now.
    pub fn blocked(&self, ip: &str, user: &str) -> Option<u64> {
        let mut map = crate::lock(&self.failures);
        let now = Instant::now();
        [format!("ip:{ip}"), format!("user:{user}")]
            .iter()
            .filter_map(|k| {
                let q = map.get_mut(k)?;
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW)
                {
                    q.pop_front();
                }
                (q.len() >= MAX_LOGIN_FAILURES).then(|| {
                    let oldest = q.front().copied().unwrap_or(now);
                    (LOGIN_WINDOW.saturating_sub(now.duration_since(oldest))).as_secs() + 1
                })
            })
            .max()
    }

    pub fn failed(&self, ip: &str, user: &str) {
        let mut map = crate::lock(&self.failures);
        let now = Instant::now();
        if map.len() > 100_000 {
            // Bounded memory under a spray of addresses: forget the quiet ones.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
        }
        for k in [format!("ip:{ip}"), format!("user:{user}")] {
            map.entry(k).or_default().push_back(now);
        }
    }

    pub fn succeeded(&self, user: &str) {
        crate::lock(&self.failures).remove(&format!("user:{user}"));
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

    #[test]
    fn sessions_and_flash() {
        let s = Sessions::default();
        let (cookie, csrf) = s.create("alice", "h");
        assert_eq!(s.get(&cookie).unwrap().user, "alice");
        assert!(csrf_matches(&csrf, Some(&csrf)));
        assert!(!csrf_matches(&csrf, Some("other")) && !csrf_matches(&csrf, None));
        s.remove(&cookie);
        assert!(s.get(&cookie).is_none());
    }

    #[test]
    fn login_limiter_blocks_after_failures() {
        let l = LoginLimiter::default();
        for _ in 0..MAX_LOGIN_FAILURES {
            assert!(l.blocked("1.2.3.4", "bob").is_none());
            l.failed("1.2.3.4", "bob");
        }
        assert!(l.blocked("1.2.3.4", "carol").is_some(), "per address");
        assert!(l.blocked("5.6.7.8", "bob").is_some(), "per user");
        assert!(l.blocked("5.6.7.8", "carol").is_none());
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
