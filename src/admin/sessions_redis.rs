//! Panel sessions shared by every instance through Redis (`limits.backend: redis`), so a
//! session started on one instance works on the others and ending a user's sessions ends them
//! everywhere. Keys, on the shared limiter's connection and timeout:
//!
//! - `fp:sess:<sha256 of the cookie>` → the session's user, CSRF token and password hash, with
//!   the session's lifetime as its expiry (Redis removes it);
//! - `fp:sessu:<user>` → the set of that user's session hashes, to end them all at once;
//! - `fp:flash:<sha256 of the cookie>` → a new key until its page shows it (five minutes at
//!   most), sealed with a key derived from the cookie itself: Redis never holds it readable;
//! - `fp:ssoflow:<sha256 of the state>` → a single sign-on under way (`admin::sso`), sealed
//!   with a key derived from the browser's flow cookie, taken once by the callback.
//!
//! Only hashes of cookies are stored, as in memory.

use crate::proxy::shared_limits::SharedLimiter;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long a flash waits for its page.
const FLASH_TTL: Duration = Duration::from_secs(300);

/// Ends every session of a user: KEYS[1] the user's set; each member's session and flash.
const END_USER: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
for _, m in ipairs(members) do
  redis.call('DEL', 'fp:sess:' .. m, 'fp:flash:' .. m)
end
redis.call('DEL', KEYS[1])
return #members
";

/// What Redis holds of one session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredSession {
    pub user: String,
    pub csrf: String,
    pub credential: String,
    /// When and from where it was opened, last used (sessions made before have none).
    #[serde(default)]
    pub meta: super::auth::SessionMeta,
}

pub struct RedisSessions {
    limiter: Arc<SharedLimiter>,
    end_user: redis::Script,
}

impl RedisSessions {
    pub fn new(limiter: Arc<SharedLimiter>) -> RedisSessions {
        RedisSessions {
            limiter,
            end_user: redis::Script::new(END_USER),
        }
    }

    /// Stores a session of `ttl` under the hex hash of its cookie.
    pub async fn put(&self, id: &str, s: &StoredSession, ttl: Duration) -> Result<(), String> {
        let value = serde_json::to_string(s).map_err(|e| e.to_string())?;
        let (key, set) = (format!("fp:sess:{id}"), format!("fp:sessu:{}", s.user));
        let secs = ttl.as_secs().max(1);
        self.limiter
            .call(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .set_ex(&key, value, secs)
                    .ignore()
                    .sadd(&set, id)
                    .ignore()
                    .expire(&set, secs as i64)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<StoredSession>, String> {
        let key = format!("fp:sess:{id}");
        let text: Option<String> = self
            .limiter
            .call(|mut c| async move { c.get(&key).await })
            .await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Writes a session again (its last use), keeping its expiry; not when it has ended.
    pub async fn touch(&self, id: &str, s: &StoredSession) -> Result<(), String> {
        let value = serde_json::to_string(s).map_err(|e| e.to_string())?;
        let key = format!("fp:sess:{id}");
        self.limiter
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// The live sessions of `user` with their hashes; ended ones leave the user's set.
    pub async fn list_user(&self, user: &str) -> Result<Vec<(String, StoredSession)>, String> {
        let set = format!("fp:sessu:{user}");
        let members: Vec<String> = self
            .limiter
            .call(|mut c| {
                let set = set.clone();
                async move { c.smembers(&set).await }
            })
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = members.iter().map(|m| format!("fp:sess:{m}")).collect();
        let values: Vec<Option<String>> = self
            .limiter
            .call(|mut c| async move { c.mget(&keys).await })
            .await?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (member, value) in members.into_iter().zip(values) {
            match value.and_then(|v| serde_json::from_str::<StoredSession>(&v).ok()) {
                Some(s) if s.user == user => live.push((member, s)),
                _ => gone.push(member),
            }
        }
        if !gone.is_empty() {
            self.limiter
                .call(|mut c| async move { c.srem::<_, _, ()>(&set, &gone).await })
                .await?;
        }
        Ok(live)
    }

    pub async fn remove(&self, id: &str) -> Result<(), String> {
        let keys = [format!("fp:sess:{id}"), format!("fp:flash:{id}")];
        self.limiter
            .call(|mut c| async move { c.del::<_, ()>(&keys).await })
            .await
    }

    /// Ends every session of `user`; how many there were.
    pub async fn remove_user(&self, user: &str) -> Result<u64, String> {
        let set = format!("fp:sessu:{user}");
        let script = &self.end_user;
        self.limiter
            .call(|mut c| async move { script.key(&set).invoke_async(&mut c).await })
            .await
    }

    /// Keeps `plain` for the session of `cookie`, sealed with a key only the cookie gives.
    pub async fn set_flash(&self, id: &str, cookie: &str, plain: &[u8]) -> Result<(), String> {
        let sealed = seal(FLASH_PURPOSE, cookie, plain)?;
        let key = format!("fp:flash:{id}");
        let secs = FLASH_TTL.as_secs();
        self.limiter
            .call(|mut c| async move { c.set_ex::<_, _, ()>(&key, sealed, secs).await })
            .await
    }

    /// The flash of `cookie`'s session, opened; it stays until [`Self::drop_flash`].
    pub async fn flash(&self, id: &str, cookie: &str) -> Result<Option<Vec<u8>>, String> {
        let key = format!("fp:flash:{id}");
        let sealed: Option<Vec<u8>> = self
            .limiter
            .call(|mut c| async move { c.get(&key).await })
            .await?;
        Ok(sealed.and_then(|s| open(FLASH_PURPOSE, cookie, &s)))
    }

    pub async fn drop_flash(&self, id: &str) -> Result<(), String> {
        let key = format!("fp:flash:{id}");
        self.limiter
            .call(|mut c| async move { c.del::<_, ()>(&key).await })
            .await
    }

    /// Keeps a sign-in under way for `ttl` under the hex hash of its `state`, sealed with a key
    /// only the browser's flow cookie gives.
    pub async fn put_flow(
        &self,
        state_id: &str,
        browser: &str,
        plain: &[u8],
        ttl: Duration,
    ) -> Result<(), String> {
        let sealed = seal(FLOW_PURPOSE, browser, plain)?;
        let key = format!("fp:ssoflow:{state_id}");
        let secs = ttl.as_secs().max(1);
        self.limiter
            .call(|mut c| async move { c.set_ex::<_, _, ()>(&key, sealed, secs).await })
            .await
    }

    /// Takes the sign-in of `state_id` (whatever follows, it is gone: a state works once) and
    /// opens it with the browser's cookie: `Ok(None)` when there is none, `Ok(Some(None))` when
    /// another browser's cookie cannot open it.
    pub async fn take_flow(
        &self,
        state_id: &str,
        browser: Option<&str>,
    ) -> Result<Option<Option<Vec<u8>>>, String> {
        let key = format!("fp:ssoflow:{state_id}");
        let sealed: Option<Vec<u8>> = self
            .limiter
            .call(|mut c| async move { redis::cmd("GETDEL").arg(&key).query_async(&mut c).await })
            .await?;
        Ok(sealed.map(|s| browser.and_then(|b| open(FLOW_PURPOSE, b, &s))))
    }
}

/// What a sealed value is for: a key derived for one purpose opens nothing of another.
const FLASH_PURPOSE: &[u8] = b"flexiproxy panel flash v1\0";
const FLOW_PURPOSE: &[u8] = b"flexiproxy sso flow v1\0";

fn cipher(purpose: &[u8], cookie: &str) -> ChaCha20Poly1305 {
    let key: [u8; 32] = Sha256::new()
        .chain_update(purpose)
        .chain_update(cookie.as_bytes())
        .finalize()
        .into();
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// A random nonce, then the sealed text.
fn seal(purpose: &[u8], cookie: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let mut out = nonce.to_vec();
    let sealed = cipher(purpose, cookie)
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| "cannot seal the value".to_owned())?;
    out.extend(sealed);
    Ok(out)
}

fn open(purpose: &[u8], cookie: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, text) = sealed.split_at_checked(12)?;
    cipher(purpose, cookie)
        .decrypt(Nonce::from_slice(nonce), text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_opens_only_with_its_cookie() {
        let sealed = seal(FLASH_PURPOSE, "cookie-a", b"fp-secret-key").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open(FLASH_PURPOSE, "cookie-a", &sealed).unwrap(),
            b"fp-secret-key"
        );
        assert_eq!(open(FLASH_PURPOSE, "cookie-b", &sealed), None);
        assert_eq!(open(FLASH_PURPOSE, "cookie-a", &sealed[..5]), None);
        // The same cookie opens nothing sealed for another purpose.
        assert_eq!(open(FLOW_PURPOSE, "cookie-a", &sealed), None);
    }
}
