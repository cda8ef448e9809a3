//! Provider key health shared by every instance through Redis (`limits.backend: redis`): a
//! key one instance saw answer 429 or 401/403 is passed over by the others too, so three
//! instances do not each burn a rate-limited key.
//!
//! - Publishing is fire-and-forget: the request that saw the change puts it on a bounded queue
//!   and goes on; a background task writes it (one small script: it never shortens what is
//!   there). Only `Disabled` and `Cooling` are shared; breakers stay per instance.
//! - A cooldown is `fp:keyhealth:cool:<adapter>:<route>:<position>:<key id>` with the
//!   cooldown's remaining time as its TTL (the provider's limit outlives an edit of the file).
//!   A disabled key is `fp:keyhealth:off:<adapter>:v<file version>:<route>:<position>:<key id>`
//!   for [`DISABLED_TTL`]: the file's version is in the name, so an edited file starts clean,
//!   as it does on one instance. The key id is the pool's seed (a SHA-256 prefix of the key's
//!   text), never the text.
//! - Every [`POLL_EVERY`] the task reads the states of every pooled key of the live adapters in
//!   one round trip (a script returning the keys that exist with their remaining TTL, so the
//!   instances' clocks do not matter) and applies them to the live pools.
//! - Each call waits at most `redis.timeout`. When Redis does not answer, each instance keeps
//!   its own health (requests never wait for Redis here); failures are counted in
//!   `flexiproxy_key_health_sync_failures_total` and logged once per change of state.

use super::dispatch::{at, chain, key_name};
use super::shared_limits::SharedLimiter;
use crate::config::adapter::Adapter;
use crate::config::snapshot::Snapshot;
use crate::config::watch::LiveConfig;
use crate::routing::{Change, Health, SharedState};
use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a key disabled by a 401/403 stays disabled for the other instances (unless the
/// adapter file changes first). A key still revoked after that is tried once more.
pub const DISABLED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often each instance reads what the others shared.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Changes waiting to be written; more are dropped (and counted) rather than queued without
/// bound while Redis is away.
const QUEUE: usize = 1024;

/// KEYS[1]: a key's state; ARGV: its value and TTL in ms. Never shortens what is there (a
/// longer cooldown from another instance).
const PUBLISH_SCRIPT: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// KEYS: every state to look at. Returns, for those that exist, their 1-based index, value
/// and remaining TTL in ms (all as strings).
const POLL_SCRIPT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v then
    out[#out + 1] = tostring(i)
    out[#out + 1] = v
    out[#out + 1] = tostring(redis.call('PTTL', key))
  end
end
return out
";

/// Where a key sits in an adapter: the same on every instance reading the same file, and
/// without the key's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPlace<'a> {
    pub adapter: &'a str,
    /// The route's name; `None`: the adapter's own `source`.
    pub route: Option<&'a str>,
    /// 0 the primary source, then its fallbacks.
    pub position: usize,
    /// The pool's seed for the key ([`crate::routing::KeyPool::key_id`]).
    pub key_id: u64,
}

impl KeyPlace<'_> {
    fn tail(&self) -> String {
        let route = match self.route {
            None => "default".to_owned(),
            Some(name) => format!("route={name}"),
        };
        format!("{route}:{}:{:016x}", self.position, self.key_id)
    }

    /// Where the key's cooldown is: any version of the file.
    pub fn cooling_key(&self) -> String {
        format!("fp:keyhealth:cool:{}:{}", self.adapter, self.tail())
    }

    /// Where the key's disabled state is: this version of the file only.
    pub fn disabled_key(&self, version: u64) -> String {
        format!(
            "fp:keyhealth:off:{}:v{version:016x}:{}",
            self.adapter,
            self.tail()
        )
    }
}

/// One write to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: String,
    pub ttl: Duration,
}

/// What to write for a key's change: `None` for a change other instances need not know (the
/// breaker) or a cooldown already over.
pub fn record(place: &KeyPlace, version: u64, change: Change, now: Instant) -> Option<Record> {
    match change {
        Change::Disabled { status } => Some(Record {
            key: place.disabled_key(version),
            value: status.to_string(),
            ttl: DISABLED_TTL,
        }),
        Change::Cooling { until } => {
            let ttl = until.saturating_duration_since(now);
            (ttl.as_millis() > 0).then(|| Record {
                key: place.cooling_key(),
                value: "429".to_owned(),
                ttl,
            })
        }
        Change::BreakerOpened { .. } | Change::BreakerClosed => None,
    }
}

/// A poll's answer as (index of the key looked at, its state), for the entries that make
/// sense: looked-at keys alternate cooling (even) and disabled (odd), as [`Watch`] lists them.
fn states(reply: &[String], now: Instant) -> Vec<(usize, SharedState)> {
    reply
        .chunks_exact(3)
        .filter_map(|entry| {
            let slot = entry[0].parse::<usize>().ok()?.checked_sub(1)?;
            let state = if slot % 2 == 0 {
                let left: u64 = entry[2].parse().ok().filter(|ms| *ms > 0)?;
                SharedState::Cooling {
                    until: now + Duration::from_millis(left),
                }
            } else {
                let status: u16 = entry[1].parse().ok().filter(|s| *s > 0)?;
                SharedState::Disabled { status }
            };
            Some((slot, state))
        })
        .collect()
}

/// A pooled key of a live adapter.
struct Target {
    adapter: Arc<Adapter>,
    route: Option<usize>,
    position: usize,
    index: usize,
}

/// The route's chain chooses between keys (more than one key, or fallbacks): with a single
/// key there is nothing to pass over, so nothing to share.
fn chooses(adapter: &Adapter, route: Option<usize>) -> bool {
    let (primary, fallbacks) = chain(adapter, route);
    !fallbacks.is_empty() || primary.pool.len() > 1
}

fn place_of(
    adapter: &Adapter,
    route: Option<usize>,
    position: usize,
    index: usize,
) -> Option<KeyPlace<'_>> {
    let route_name = match route {
        None => None,
        Some(i) => Some(adapter.routes.get(i)?.name.as_str()),
    };
    Some(KeyPlace {
        adapter: &adapter.name,
        route: route_name,
        position,
        key_id: at(adapter, route, position)?.pool.key_id(index)?,
    })
}

/// The keys a poll looks at, for one snapshot: two Redis keys per pooled key (cooling, then
/// disabled).
struct Watch {
    snapshot: Arc<Snapshot>,
    targets: Vec<Target>,
    keys: Vec<String>,
}

impl Watch {
    fn of(snapshot: Arc<Snapshot>) -> Watch {
        let mut targets = Vec::new();
        let mut keys = Vec::new();
        for adapter in &snapshot.adapters {
            let routes = std::iter::once(None).chain((0..adapter.routes.len()).map(Some));
            for route in routes.filter(|r| chooses(adapter, *r)) {
                let (primary, fallbacks) = chain(adapter, route);
                for (position, source) in std::iter::once(primary).chain(fallbacks).enumerate() {
                    for index in 0..source.pool.len() {
                        let Some(place) = place_of(adapter, route, position, index) else {
                            continue;
                        };
                        keys.push(place.cooling_key());
                        keys.push(place.disabled_key(adapter.version));
                        targets.push(Target {
                            adapter: adapter.clone(),
                            route,
                            position,
                            index,
                        });
                    }
                }
            }
        }
        Watch {
            snapshot,
            targets,
            keys,
        }
    }
}

pub struct SharedHealth {
    limiter: Arc<SharedLimiter>,
    live: LiveConfig,
    metrics: Arc<Metrics>,
    queue: mpsc::Sender<Record>,
    pending: std::sync::Mutex<Option<mpsc::Receiver<Record>>>,
    up: AtomicBool,
    publish: redis::Script,
    poll: redis::Script,
}

impl std::fmt::Debug for SharedHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedHealth")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl SharedHealth {
    /// Shares through the limiter's Redis connection (and within its `redis.timeout`).
    pub fn new(limiter: Arc<SharedLimiter>, live: LiveConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let (queue, pending) = mpsc::channel(QUEUE);
        metrics.key_health_sync_up.set(1);
        Arc::new(SharedHealth {
            limiter,
            live,
            metrics,
            queue,
            pending: std::sync::Mutex::new(Some(pending)),
            up: AtomicBool::new(true),
            publish: redis::Script::new(PUBLISH_SCRIPT),
            poll: redis::Script::new(POLL_SCRIPT),
        })
    }

    /// The background task that writes this instance's changes and reads the others'.
    pub fn sync(self: &Arc<Self>) -> HealthSync {
        HealthSync {
            health: self.clone(),
        }
    }

    /// Queues a key's change for the other instances; never waits.
    pub fn publish(
        &self,
        adapter: &Adapter,
        route: Option<usize>,
        position: usize,
        index: usize,
        change: Change,
    ) {
        if !chooses(adapter, route) {
            return;
        }
        let Some(place) = place_of(adapter, route, position, index) else {
            return;
        };
        let Some(record) = record(&place, adapter.version, change, Instant::now()) else {
            return;
        };
        if self.queue.try_send(record).is_err() {
            self.metrics.key_health_sync_failures.inc();
        }
    }

    async fn write(&self, record: Record) {
        let mut invocation = self.publish.prepare_invoke();
        invocation
            .key(&record.key)
            .arg(&record.value)
            .arg(record.ttl.as_millis().max(1) as u64);
        let result: Result<u8, String> = self
            .limiter
            .call(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        self.note(result.err());
    }

    async fn poll(&self, watch: &mut Option<Watch>) {
        let snapshot = self.live.load_full();
        if !watch
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(&w.snapshot, &snapshot))
        {
            *watch = Some(Watch::of(snapshot));
        }
        let Some(watch) = watch.as_ref().filter(|w| !w.keys.is_empty()) else {
            return;
        };
        let mut invocation = self.poll.prepare_invoke();
        for key in &watch.keys {
            invocation.key(key);
        }
        let result: Result<Vec<String>, String> = self
            .limiter
            .call(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return self.note(Some(e)),
        };
        self.note(None);
        let now = Instant::now();
        for (slot, state) in states(&reply, now) {
            if let Some(target) = watch.targets.get(slot / 2) {
                self.apply(target, state, now);
            }
        }
    }

    /// Applies another instance's state to the live pool; logs and shows it when it is news.
    fn apply(&self, t: &Target, state: SharedState, now: Instant) {
        let Some(source) = at(&t.adapter, t.route, t.position) else {
            return;
        };
        let before = source.pool.state(now).get(t.index).map(|k| k.health);
        source.pool.apply_shared(t.index, state);
        let (health, what) = match (state, before) {
            (SharedState::Disabled { .. }, Some(Health::Disabled { .. })) => return,
            (SharedState::Cooling { until }, Some(Health::Cooling { until: had }))
                if until <= had + Duration::from_secs(1) =>
            {
                return;
            }
            (SharedState::Disabled { status }, _) => (
                -1,
                format!(
                    "disabled after {status} on another instance until the adapter file changes"
                ),
            ),
            (SharedState::Cooling { until }, _) => (
                0,
                format!(
                    "rate-limited on another instance; cooling for {:.0} s",
                    until.saturating_duration_since(now).as_secs_f64()
                ),
            ),
        };
        let route = t
            .route
            .and_then(|i| t.adapter.routes.get(i))
            .map_or("default", |r| r.name.as_str());
        let label = source.keys.get(t.index).and_then(|k| k.label.as_deref());
        let slot = key_name(t.position, t.index, label);
        self.metrics
            .key_health
            .with_label_values(&[t.adapter.name.as_str(), route, &slot])
            .set(health);
        tracing::info!(
            adapter = %t.adapter.name, route = %route, key_slot = %slot,
            "provider key {what}"
        );
    }

    /// Counts a failure, and logs a change between reaching Redis and not.
    fn note(&self, error: Option<String>) {
        match error {
            None => {
                if !self.up.swap(true, Ordering::AcqRel) {
                    self.metrics.key_health_sync_up.set(1);
                    tracing::info!(
                        "shared key health: Redis reachable again; provider key states are shared again"
                    );
                }
            }
            Some(e) => {
                self.metrics.key_health_sync_failures.inc();
                if self.up.swap(false, Ordering::AcqRel) {
                    self.metrics.key_health_sync_up.set(0);
                    tracing::warn!(
                        error = %e,
                        "shared key health: Redis unreachable; each instance keeps its own provider key health"
                    );
                }
            }
        }
    }
}

/// Writes this instance's changes as they come and polls for the others' every second.
pub struct HealthSync {
    health: Arc<SharedHealth>,
}

#[async_trait]
impl BackgroundService for HealthSync {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the process ends: requests still draining keep their pools current.
        let Some(mut pending) = crate::lock(&self.health.pending).take() else {
            return;
        };
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = None;
        loop {
            tokio::select! {
                _ = tick.tick() => self.health.poll(&mut watch).await,
                Some(record) = pending.recv() => self.health.write(record).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::adapter::parse_adapter;
    use crate::routing::Outcome;

    fn place(route: Option<&str>, position: usize) -> KeyPlace<'_> {
        KeyPlace {
            adapter: "team",
            route,
            position,
            key_id: 0xfeed,
        }
    }

    #[test]
    fn keys_name_the_place_never_the_key_and_disabled_ones_the_file_version() {
        let p = place(None, 0);
        assert_eq!(
            p.cooling_key(),
            "fp:keyhealth:cool:team:default:0:000000000000feed"
        );
        assert_eq!(
            p.disabled_key(0xabc),
            "fp:keyhealth:off:team:v0000000000000abc:default:0:000000000000feed"
        );
        assert_ne!(p.disabled_key(1), p.disabled_key(2), "an edit starts clean");
        // A route named `default` is not the adapter's own source; fallbacks differ.
        assert_ne!(place(Some("default"), 0).cooling_key(), p.cooling_key());
        assert_ne!(place(None, 1).cooling_key(), p.cooling_key());

        let text = "source:\n  base_url: http://127.0.0.1:9/v1\n  api_keys: [sk-live-SECRET-a, sk-live-SECRET-b]\n  model: m\n";
        let path = std::path::Path::new("/conf/adapters/team.yaml");
        let a = parse_adapter(path, text, &|_| None).unwrap();
        let edited = parse_adapter(path, &format!("{text}# edited\n"), &|_| None).unwrap();
        assert_ne!(a.version, edited.version);
        let keys = Watch::of(Arc::new(snapshot_of(a))).keys;
        assert_eq!(
            keys.len(),
            4,
            "two keys, each cooling and disabled: {keys:?}"
        );
        assert!(keys.iter().all(|k| !k.contains("SECRET")), "{keys:?}");
        assert_ne!(keys[0], keys[2], "each key its own name");
    }

    fn snapshot_of(adapter: Adapter) -> Snapshot {
        Snapshot::new(1, vec![Arc::new(adapter)])
    }

    #[test]
    fn ttls_are_the_cooldown_left_or_long_for_a_disabled_key() {
        let now = Instant::now();
        let p = place(Some("cheap"), 1);
        let cooling = Change::Cooling {
            until: now + Duration::from_secs(30),
        };
        assert_eq!(
            record(&p, 7, cooling, now),
            Some(Record {
                key: p.cooling_key(),
                value: "429".into(),
                ttl: Duration::from_secs(30),
            })
        );
        assert_eq!(
            record(&p, 7, cooling, now + Duration::from_secs(30)),
            None,
            "over already"
        );
        assert_eq!(
            record(&p, 7, Change::Disabled { status: 401 }, now),
            Some(Record {
                key: p.disabled_key(7),
                value: "401".into(),
                ttl: DISABLED_TTL,
            })
        );
        let open = Change::BreakerOpened { until: now };
        assert_eq!(record(&p, 7, open, now), None, "breakers stay local");
        assert_eq!(record(&p, 7, Change::BreakerClosed, now), None);
    }

    #[test]
    fn a_poll_reply_becomes_states_with_redis_ttls_as_instants() {
        let now = Instant::now();
        let reply: Vec<String> = [
            "1", "429", "1500", // key 0 cooling 1.5 s more
            "4", "403", "-1", // key 1 disabled
            "3", "429", "0", // expired meanwhile
            "6", "junk", "5", // not a status
            "0", "1", "1", // not an index
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            states(&reply, now),
            [
                (
                    0,
                    SharedState::Cooling {
                        until: now + Duration::from_millis(1500)
                    }
                ),
                (3, SharedState::Disabled { status: 403 }),
            ]
        );
    }

    #[test]
    fn applied_states_make_the_pool_pass_the_key_over_and_show_it() {
        let text = "source:\n  base_url: http://127.0.0.1:9/v1\n  api_keys: [sk-a, sk-b]\n  balance: round_robin\n  model: m\n";
        let a = parse_adapter(std::path::Path::new("/a/p.yaml"), text, &|_| None).unwrap();
        let snapshot = Arc::new(snapshot_of(a));
        let metrics = Arc::new(Metrics::new());
        let redis = crate::config::server::RedisConfig {
            url: "redis://127.0.0.1:9".into(),
            timeout: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(30),
            on_failure: crate::config::server::OnFailure::FailOpen,
        };
        let limiter = SharedLimiter::new(redis, "i0", metrics.clone()).unwrap();
        let live = Arc::new(arc_swap::ArcSwap::new(snapshot.clone()));
        let health = SharedHealth::new(limiter, live, metrics.clone());
        let watch = Watch::of(snapshot);
        let now = Instant::now();
        let until = now + Duration::from_secs(30);
        health.apply(&watch.targets[0], SharedState::Cooling { until }, now);
        let pool = &watch.targets[0].adapter.source.pool;
        assert_eq!(pool.state(now)[0].health, Health::Cooling { until });
        for c in 0..10 {
            let lease = pool.pick(c, now, &[]).key().unwrap();
            assert_eq!(lease.index(), 1);
            lease.report(Outcome::Success, now);
        }
        let shown = |key: &str, value: i64| {
            let text = String::from_utf8(metrics.render()).unwrap();
            text.contains(&format!(
                "flexiproxy_provider_key_health{{adapter=\"p\",key=\"{key}\",route=\"default\"}} {value}"
            ))
        };
        assert!(shown("0/0", 0));
        health.apply(
            &watch.targets[1],
            SharedState::Disabled { status: 401 },
            now,
        );
        assert!(shown("0/1", -1));
        assert_eq!(pool.state(now)[1].health, Health::Disabled { status: 401 });
    }
}
