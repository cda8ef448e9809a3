//! Limits shared by every instance through Redis (`limits.backend: redis`): requests per
//! minute, concurrent requests and token budgets per key (or per adapter), each decided by one
//! Lua script that runs atomically in Redis with Redis's own clock — exact across instances,
//! whatever their clocks say.
//!
//! The per-minute and concurrency checks of a request are one script, one round trip.
//!
//! - Requests per minute: a sliding-window log (a sorted set of admission times). Exact — in
//!   any 60 s, at most N — which GCRA or fixed windows are not for a burst (GCRA admits N and
//!   then refills while the burst lasts; a fixed window admits 2N across its edge). It costs
//!   one set entry per admitted request of the last minute, bounded by the limit.
//! - Concurrency: a lease per request in flight (a sorted set scored by expiry). The instance
//!   renews its leases every third of `lease_ttl` and removes them when requests end; the
//!   leases of an instance that died expire, so its slots come back within `lease_ttl`.
//! - Budgets: counters per UTC day / month, reserved and settled as in `budget`.
//!
//! Every call waits at most `redis.timeout`; when Redis does not answer in time the request is
//! admitted (`fail_open`) or refused with 503 (`fail_closed`), counted in
//! `flexiproxy_limiter_backend_failures_total`, and logged once per change of state.

use super::budget::{Reservation, Window, over_budget};
use super::errors::ProxyError;
use super::limits::Refusal;
use crate::config::server::{OnFailure, RedisConfig};
use crate::protocol::anthropic::ErrorKind;
use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One round trip per request: the requests-per-minute log (KEYS[1]) and the concurrency
/// leases (KEYS[2]). ARGV: per-minute limit and concurrency limit (-1 = none), the window and
/// the lease TTL in ms, this request's member. Both are checked before either is counted, so
/// a request refused for concurrency does not use up a request of the minute.
/// Returns {0, 0} admitted, {1, ms until a slot of the minute frees} or {2, 0}.
const ADMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if oldest[2] == nil then return {1, window} end
    return {1, math.max(1, tonumber(oldest[2]) + window - now)}
  end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then return {2, 0} end
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], window)
end
return {0, 0}
";

const RENEW_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return #KEYS
";

/// KEYS: the window counters; ARGV: amount, then per key its limit and its TTL in seconds.
/// Returns 0, or the 1-based index of the window that is full.
const RESERVE_SCRIPT: &str = r"
local amount = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + amount > tonumber(ARGV[i * 2]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, amount)
  redis.call('EXPIRE', key, tonumber(ARGV[i * 2 + 1]))
end
return 0
";

/// KEYS: the window counters; ARGV per key: its amount, its limit, its TTL in seconds. All
/// or none, as `RESERVE_SCRIPT`; returns 0 or the 1-based index of the full window.
const RESERVE_EACH_SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + tonumber(ARGV[i * 3 - 2]) > tonumber(ARGV[i * 3 - 1]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[i * 3 - 2])
  redis.call('EXPIRE', key, tonumber(ARGV[i * 3]))
end
return 0
";

/// KEYS: the counters reserved on; ARGV[1]: actual minus reserved (may be negative).
const SETTLE_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local v = redis.call('INCRBY', key, tonumber(ARGV[1]))
    if v < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
  end
end
return 0
";

/// Why a shared check did not admit a request.
#[derive(Debug)]
pub enum Denied {
    /// A limit is reached: the client gets this error.
    Limit(ProxyError, Refusal),
    /// Redis did not answer and `fail_closed` is set.
    Unavailable(ProxyError),
}

/// A concurrency slot in Redis; dropping it removes the lease.
pub struct Lease {
    key: String,
    member: String,
    keeper: Arc<Leases>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.release(&self.key, &self.member);
    }
}

/// The leases this instance holds, renewed and released by [`LeaseKeeper`].
struct Leases {
    held: std::sync::Mutex<HashMap<String, String>>,
    released: mpsc::UnboundedSender<(String, String)>,
}

impl Leases {
    fn release(&self, key: &str, member: &str) {
        crate::lock(&self.held).remove(member);
        let _ = self.released.send((key.to_owned(), member.to_owned()));
    }
}

pub struct SharedLimiter {
    config: RedisConfig,
    client: redis::Client,
    conn: tokio::sync::Mutex<(Option<ConnectionManager>, Option<Instant>)>,
    leases: Arc<Leases>,
    released: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(String, String)>>>,
    instance: String,
    next_id: AtomicU64,
    up: AtomicBool,
    metrics: Arc<Metrics>,
    admit: redis::Script,
    renew: redis::Script,
    reserve: redis::Script,
    reserve_each: redis::Script,
    settle: redis::Script,
}

/// The longest gap between connection attempts while Redis is unreachable.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("SharedLimiter")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl SharedLimiter {
    pub fn new(
        config: RedisConfig,
        instance: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("redis.url: {}", e.category()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        metrics.limiter_backend_up.set(1);
        Ok(Arc::new(SharedLimiter {
            config,
            client,
            conn: tokio::sync::Mutex::new((None, None)),
            leases: Arc::new(Leases {
                held: std::sync::Mutex::new(HashMap::new()),
                released: tx,
            }),
            released: std::sync::Mutex::new(Some(rx)),
            instance: instance.to_owned(),
            next_id: AtomicU64::new(0),
            up: AtomicBool::new(true),
            metrics,
            admit: redis::Script::new(ADMIT_SCRIPT),
            renew: redis::Script::new(RENEW_SCRIPT),
            reserve: redis::Script::new(RESERVE_SCRIPT),
            reserve_each: redis::Script::new(RESERVE_EACH_SCRIPT),
            settle: redis::Script::new(SETTLE_SCRIPT),
        }))
    }

    /// The background task that renews and releases this instance's leases.
    pub fn keeper(self: &Arc<Self>) -> LeaseKeeper {
        LeaseKeeper {
            limiter: self.clone(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = &slot.0 {
            return Ok(c.clone());
        }
        if slot.1.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
            return Err("not connected".into());
        }
        slot.1 = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.timeout)
            .set_response_timeout(self.config.timeout)
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.config.timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                slot.0 = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => Err(format!("cannot connect: {}", e.category())),
            Err(_) => Err("connect timed out".into()),
        }
    }

    /// Runs one Redis call within the timeout, tracking whether Redis answers.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = self.call(call).await;
        self.note(result.as_ref().err());
        result
    }

    /// Runs one Redis call on the limiter's connection within `redis.timeout`, without
    /// counting it toward the limiter's up/down state (key health sharing keeps its own).
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        match self.connection().await {
            Err(e) => Err(e),
            Ok(conn) => {
                let left = self.config.timeout.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, call(conn)).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(e.category().to_string()),
                    Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
                }
            }
        }
    }

    /// Logs and counts a change between answering and not answering.
    fn note(&self, error: Option<&String>) {
        match error {
            None => {
                if !self.up.swap(true, Ordering::AcqRel) {
                    self.metrics.limiter_backend_up.set(1);
                    tracing::info!("shared limiter: Redis answers again; limits apply");
                }
            }
            Some(e) => {
                if self.up.swap(false, Ordering::AcqRel) {
                    self.metrics.limiter_backend_up.set(0);
                    let mode = match self.config.on_failure {
                        OnFailure::FailOpen => "admitting requests unlimited (fail_open)",
                        OnFailure::FailClosed => "refusing limited requests (fail_closed)",
                    };
                    tracing::warn!(error = %e, "shared limiter: Redis does not answer; {mode}");
                }
            }
        }
    }

    /// Redis failed: admit (`Ok`) or refuse, per `on_failure`.
    fn on_failure(&self) -> Result<(), Denied> {
        match self.config.on_failure {
            OnFailure::FailOpen => {
                self.metrics
                    .limiter_backend_failures
                    .with_label_values(&["open"])
                    .inc();
                Ok(())
            }
            OnFailure::FailClosed => {
                self.metrics
                    .limiter_backend_failures
                    .with_label_values(&["closed"])
                    .inc();
                Err(Denied::Unavailable(
                    ProxyError::new(
                        ErrorKind::Api,
                        "the rate limiter is unavailable; try again shortly",
                    )
                    .with_status(503)
                    .with_retry_after("1"),
                ))
            }
        }
    }

    fn member(&self) -> String {
        format!(
            "{}:{}",
            self.instance,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Counts the request in `scope` against its per-minute and concurrency limits: the
    /// concurrency lease, or `None` when there is no concurrency limit or Redis failed open.
    pub async fn admit(
        &self,
        scope: &str,
        per_minute: Option<u32>,
        concurrent: Option<u32>,
    ) -> Result<Option<Lease>, Denied> {
        let rpm_key = format!("fp:rpm:{scope}");
        let lease_key = format!("fp:conc:{scope}");
        let member = self.member();
        let ttl = self.config.lease_ttl.as_millis() as u64;
        let limit = |l: Option<u32>| l.map_or(-1, i64::from);
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(&rpm_key)
            .key(&lease_key)
            .arg(limit(per_minute))
            .arg(limit(concurrent))
            .arg(60_000)
            .arg(ttl)
            .arg(&member);
        let result: Result<(u8, u64), String> = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        match result {
            Ok((0, _)) => {
                if concurrent.is_none() {
                    return Ok(None);
                }
                crate::lock(&self.leases.held).insert(member.clone(), lease_key.clone());
                Ok(Some(Lease {
                    key: lease_key,
                    member,
                    keeper: self.leases.clone(),
                }))
            }
            Ok((1, wait_ms)) => Err(Denied::Limit(
                ProxyError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "rate limit of {} requests per minute reached",
                        per_minute.unwrap_or(0)
                    ),
                )
                .with_retry_after(wait_ms.div_ceil(1000).max(1).to_string()),
                Refusal::RequestsPerMinute,
            )),
            Ok(_) => Err(Denied::Limit(
                ProxyError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "limit of {} concurrent requests reached",
                        concurrent.unwrap_or(0)
                    ),
                )
                .with_retry_after("1"),
                Refusal::Concurrency,
            )),
            Err(_) => self.on_failure().map(|()| None),
        }
    }

    /// Reserves `amount` tokens in every window, or refuses with the full window's error.
    pub async fn reserve(
        &self,
        windows: &[Window],
        amount: u64,
    ) -> Result<Option<Reservation>, Denied> {
        let keys: Vec<String> = windows
            .iter()
            .map(|w| format!("fp:budget:{}", w.counter))
            .collect();
        let mut invocation = self.reserve.prepare_invoke();
        for k in &keys {
            invocation.key(k);
        }
        invocation.arg(amount);
        for w in windows {
            // Kept a day past the window's end, for a settle that arrives late.
            invocation.arg(w.limit).arg(w.seconds_left + 86_400);
        }
        let result: Result<usize, String> = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        match result {
            Ok(0) => Ok(Some(Reservation {
                counters: keys,
                amount,
                shared: true,
            })),
            Ok(i) => Err(Denied::Limit(
                over_budget(&windows[(i - 1).min(windows.len() - 1)], amount),
                Refusal::TokenBudget,
            )),
            Err(_) => self.on_failure().map(|()| None),
        }
    }

    /// Reserves each window's own amount, all or none (the per-user quotas); a full window
    /// `i` is refused with `refuse(i)`. `Ok(None)`: Redis failed open.
    pub async fn reserve_each(
        &self,
        items: &[(Window, u64)],
        refuse: impl FnOnce(usize) -> ProxyError,
    ) -> Result<Option<Vec<Reservation>>, Denied> {
        let keys: Vec<String> = items
            .iter()
            .map(|(w, _)| format!("fp:budget:{}", w.counter))
            .collect();
        let mut invocation = self.reserve_each.prepare_invoke();
        for ((w, amount), k) in items.iter().zip(&keys) {
            invocation.key(k);
            invocation
                .arg(amount)
                .arg(w.limit)
                .arg(w.seconds_left + 86_400);
        }
        let result: Result<usize, String> = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        match result {
            Ok(0) => Ok(Some(
                items
                    .iter()
                    .zip(keys)
                    .map(|((_, amount), key)| Reservation {
                        counters: vec![key],
                        amount: *amount,
                        shared: true,
                    })
                    .collect(),
            )),
            Ok(i) => Err(Denied::Limit(
                refuse((i - 1).min(items.len().saturating_sub(1))),
                Refusal::UserQuota,
            )),
            Err(_) => self.on_failure().map(|()| None),
        }
    }

    /// What the windows' counters hold now (0 for one never used).
    pub async fn used(&self, windows: &[Window]) -> Result<Vec<u64>, String> {
        let keys: Vec<String> = windows
            .iter()
            .map(|w| format!("fp:budget:{}", w.counter))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<u64>> = self
            .run(|mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await })
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Corrects a reservation to what the request really used.
    pub async fn settle(&self, reservation: &Reservation, actual: u64) {
        let delta = actual as i64 - reservation.amount as i64;
        if delta == 0 {
            return;
        }
        let mut invocation = self.settle.prepare_invoke();
        for k in &reservation.counters {
            invocation.key(k);
        }
        invocation.arg(delta);
        let result: Result<u8, String> = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, delta, "shared limiter: a token budget could not be settled");
        }
    }

    async fn renew_all(&self) {
        let held: Vec<(String, String)> = crate::lock(&self.leases.held)
            .iter()
            .map(|(m, k)| (k.clone(), m.clone()))
            .collect();
        if held.is_empty() {
            return;
        }
        let mut invocation = self.renew.prepare_invoke();
        invocation.arg(self.config.lease_ttl.as_millis() as u64);
        for (k, m) in &held {
            invocation.key(k);
            invocation.arg(m);
        }
        let _: Result<u64, String> = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
    }

    async fn remove(&self, key: &str, member: &str) {
        let _: Result<u64, String> = self
            .run(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut c)
                    .await
            })
            .await;
    }
}

/// Renews the instance's leases every third of their TTL and removes released ones.
pub struct LeaseKeeper {
    limiter: Arc<SharedLimiter>,
}

#[async_trait]
impl BackgroundService for LeaseKeeper {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the process ends, shutdown included: requests still draining keep
        // renewing their leases and release them when they end.
        let Some(mut released) = crate::lock(&self.limiter.released).take() else {
            return;
        };
        let mut tick = tokio::time::interval(self.limiter.config.lease_ttl / 3);
        loop {
            tokio::select! {
                _ = tick.tick() => self.limiter.renew_all().await,
                Some((key, member)) = released.recv() => {
                    self.limiter.remove(&key, &member).await;
                }
            }
        }
    }
}
