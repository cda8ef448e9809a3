//! A pool of provider keys for one source: which key serves a request, given each key's
//! health and the balance strategy, and what the provider's answer did to the key.
//!
//! The pool never holds key text: a key is its index, an optional label and a seed (a hash of
//! its text, so a conversation stays on the same key when keys are reordered in the file and on
//! every instance). Cheap to clone (one `Arc`), `Send + Sync`, lock-free; time is passed in.

use super::hash::mix;
use super::health::{
    Availability, Change, Clock, Health, HealthConfig, KeyHealth, Outcome, SharedState,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// How a pool spreads requests over its healthy keys (`balance:` in the adapter file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// One conversation on one key while that key is healthy (keeps prompt caches warm):
    /// rendezvous hashing, so a key leaving moves only its own conversations, and they come
    /// back when it returns.
    #[default]
    Sticky,
    /// The key with the fewest requests in flight; ties in turn.
    LeastBusy,
    RoundRobin,
}

/// One key of a pool, without its text.
#[derive(Clone)]
pub struct PoolKey {
    pub label: Option<String>,
    seed: u64,
}

impl PoolKey {
    /// A key whose rendezvous seed comes from its text (a SHA-256 prefix, never reversible to
    /// the key, and never printed).
    pub fn new(label: Option<String>, secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        PoolKey {
            label,
            seed: u64::from_le_bytes(seed),
        }
    }

    /// A key known by its position only (its conversations move if the keys are reordered).
    pub fn indexed(index: usize, label: Option<String>) -> Self {
        PoolKey {
            label,
            seed: mix(index as u64 ^ 0x5EED),
        }
    }
}

impl std::fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolKey")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The answer of [`KeyPool::pick`].
#[derive(Debug)]
pub enum Pick {
    Key(KeyLease),
    /// No key may serve this request now.
    Unavailable {
        /// The earliest end of a cooldown, if any key is cooling.
        retry_at: Option<Instant>,
        /// Every key not disabled is cooling: answer 429 with `retry-after` (rather than the
        /// provider's last error).
        all_cooling: bool,
    },
}

impl Pick {
    pub fn key(self) -> Option<KeyLease> {
        match self {
            Pick::Key(lease) => Some(lease),
            Pick::Unavailable { .. } => None,
        }
    }
}

/// A request in flight on a key: counts for `least_busy` until dropped. If it is a half-open
/// breaker's trial and is dropped without an outcome, the trial goes to the next request.
pub struct KeyLease {
    pool: Arc<Inner>,
    index: usize,
    trial: Option<i64>,
}

impl KeyLease {
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn label(&self) -> Option<&str> {
        self.pool.keys[self.index].label.as_deref()
    }

    /// This request is the one trial of a half-open breaker.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// Reports the provider's answer and ends the lease.
    pub fn report(self, outcome: Outcome, now: Instant) -> Option<Change> {
        let pool = KeyPool {
            inner: self.pool.clone(),
        };
        pool.report(self.index, outcome, now)
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        let key = &self.pool.health[self.index];
        key.in_flight.fetch_sub(1, Relaxed);
        if let Some(open) = self.trial {
            key.release_trial(open);
        }
    }
}

impl std::fmt::Debug for KeyLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLease")
            .field("index", &self.index)
            .field("label", &self.label())
            .field("trial", &self.is_trial())
            .finish()
    }
}

/// A key's state for the panel, `adapter show`, `/metrics` and sharing through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub index: usize,
    pub label: Option<String>,
    pub health: Health,
    pub in_flight: u32,
    /// Consecutive failures toward the breaker.
    pub failures: u32,
}

impl KeyState {
    /// What other instances should learn about this key.
    pub fn shared(&self) -> Option<SharedState> {
        match self.health {
            Health::Disabled { status } => Some(SharedState::Disabled { status }),
            Health::Cooling { until } => Some(SharedState::Cooling { until }),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct KeyPool {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Vec<PoolKey>,
    health: Vec<KeyHealth>,
    balance: Balance,
    config: HealthConfig,
    clock: Clock,
    /// Where `round_robin` and `least_busy` ties start.
    cursor: AtomicUsize,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("balance", &self.inner.balance)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

impl KeyPool {
    /// A pool with every key healthy (a rebuilt pool forgets disabled keys: the adapter file
    /// changed). An empty pool is the config's error; here it just never picks.
    pub fn new(keys: Vec<PoolKey>, balance: Balance, config: HealthConfig) -> Self {
        KeyPool {
            inner: Arc::new(Inner {
                health: keys.iter().map(|_| KeyHealth::new()).collect(),
                keys,
                balance,
                config,
                clock: Clock::new(),
                cursor: AtomicUsize::new(0),
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.keys.is_empty()
    }

    pub fn balance(&self) -> Balance {
        self.inner.balance
    }

    /// Chooses a key for a request of `conversation` (see [`super::conversation_id`]), skipping
    /// the keys in `exclude` (already tried for this request).
    pub fn pick(&self, conversation: u64, now: Instant, exclude: &[usize]) -> Pick {
        let inner = &*self.inner;
        let now_tick = inner.clock.tick(now);
        // A half-open key's trial can be taken by a racing request between looking and
        // claiming; then it reads as blocked and the next round chooses again.
        for _ in 0..=inner.keys.len() {
            let Some((index, availability)) = self.choose(conversation, now_tick, exclude) else {
                break;
            };
            let trial = match availability {
                Availability::Trial(open) if inner.health[index].claim_trial(open) => Some(open),
                Availability::Trial(_) => continue,
                _ => None,
            };
            inner.health[index].in_flight.fetch_add(1, Relaxed);
            return Pick::Key(KeyLease {
                pool: self.inner.clone(),
                index,
                trial,
            });
        }
        self.unavailable(now_tick)
    }

    /// A lease on key `index` whatever its health: for a request that has nowhere better to
    /// go (one key, or every key unavailable), so the client gets the provider's own answer.
    /// `None` for an index out of range.
    pub fn lease_anyway(&self, index: usize) -> Option<KeyLease> {
        let key = self.inner.health.get(index)?;
        key.in_flight.fetch_add(1, Relaxed);
        Some(KeyLease {
            pool: self.inner.clone(),
            index,
            trial: None,
        })
    }

    fn choose(
        &self,
        conversation: u64,
        now: i64,
        exclude: &[usize],
    ) -> Option<(usize, Availability)> {
        let inner = &*self.inner;
        let n = inner.keys.len();
        let usable = (0..n).filter_map(|i| {
            let a = inner.health[i].availability(now);
            (a != Availability::Blocked && !exclude.contains(&i)).then_some((i, a))
        });
        match inner.balance {
            Balance::Sticky => usable.max_by_key(|&(i, _)| mix(conversation ^ inner.keys[i].seed)),
            // In turn over the keys usable now (an unusable key's turn is not given to its
            // neighbour). Counting and taking are separate reads; if a key changed state in
            // between, the first usable one serves.
            Balance::RoundRobin => {
                let start = inner.cursor.fetch_add(1, Relaxed);
                let count = usable.clone().count().max(1);
                usable
                    .clone()
                    .nth(start % count)
                    .or_else(|| usable.clone().next())
            }
            // The fewest in flight; ties in turn, the same way.
            Balance::LeastBusy => {
                let busy =
                    |&(i, _): &(usize, Availability)| inner.health[i].in_flight.load(Relaxed);
                let least = usable.clone().map(|c| busy(&c)).min()?;
                let ties = usable.clone().filter(|c| busy(c) == least);
                let start = inner.cursor.fetch_add(1, Relaxed);
                let count = ties.clone().count().max(1);
                ties.clone()
                    .nth(start % count)
                    .or_else(|| usable.min_by_key(busy))
            }
        }
    }

    fn unavailable(&self, now: i64) -> Pick {
        let mut retry_at = None;
        let mut all_cooling = true;
        let mut any_cooling = false;
        for key in &self.inner.health {
            match key.health(now, &self.inner.clock) {
                Health::Disabled { .. } => {}
                Health::Cooling { until } => {
                    any_cooling = true;
                    retry_at = Some(retry_at.map_or(until, |t: Instant| t.min(until)));
                }
                _ => all_cooling = false,
            }
        }
        Pick::Unavailable {
            retry_at,
            all_cooling: all_cooling && any_cooling,
        }
    }

    /// Records the provider's answer to a request on key `index`. Returns a change worth
    /// logging (a key disabled is returned once) and, for `Disabled`/`Cooling`, sharing.
    pub fn report(&self, index: usize, outcome: Outcome, now: Instant) -> Option<Change> {
        let inner = &*self.inner;
        let key = inner.health.get(index)?;
        key.report(outcome, inner.clock.tick(now), &inner.config, &inner.clock)
    }

    /// Applies what another instance learnt about key `index` (an index out of range is
    /// ignored: the other instance may run an older file).
    pub fn apply_shared(&self, index: usize, state: SharedState) {
        if let Some(key) = self.inner.health.get(index) {
            key.apply_shared(state, &self.inner.clock);
        }
    }

    /// Key `index`'s seed (a SHA-256 prefix of its text, never the text): how instances
    /// running the same file name the same key when they share its health.
    pub fn key_id(&self, index: usize) -> Option<u64> {
        self.inner.keys.get(index).map(|k| k.seed)
    }

    /// Every key's state now.
    pub fn state(&self, now: Instant) -> Vec<KeyState> {
        let inner = &*self.inner;
        let now = inner.clock.tick(now);
        (inner.keys.iter().zip(&inner.health).enumerate())
            .map(|(index, (key, health))| KeyState {
                index,
                label: key.label.clone(),
                health: health.health(now, &inner.clock),
                in_flight: health.in_flight.load(Relaxed),
                failures: health.failures(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(n: usize, balance: Balance) -> KeyPool {
        let keys = (0..n)
            .map(|i| PoolKey::new(Some(format!("k{i}")), &format!("sk-secret-{i}")))
            .collect();
        KeyPool::new(keys, balance, HealthConfig::default())
    }

    fn pick(p: &KeyPool, conversation: u64, now: Instant) -> usize {
        p.pick(conversation, now, &[]).key().expect("a key").index()
    }

    #[test]
    fn sticky_keeps_a_conversation_on_one_key_and_spreads_conversations() {
        let p = pool(3, Balance::Sticky);
        let now = Instant::now();
        let mut per_key = [0; 3];
        for c in 0..1000u64 {
            let first = pick(&p, mix(c), now);
            for _ in 0..3 {
                assert_eq!(pick(&p, mix(c), now), first);
            }
            per_key[first] += 1;
        }
        assert!(per_key.iter().all(|&n| n > 250), "{per_key:?}");
    }

    #[test]
    fn a_key_leaving_moves_only_its_conversations_and_gets_them_back() {
        let p = pool(5, Balance::Sticky);
        let now = Instant::now();
        let before: Vec<usize> = (0..1000).map(|c| pick(&p, c, now)).collect();
        p.report(2, Outcome::RateLimited(Some(Duration::from_secs(60))), now);
        for (c, &was) in before.iter().enumerate() {
            let is = pick(&p, c as u64, now);
            if was == 2 {
                assert_ne!(is, 2);
            } else {
                assert_eq!(is, was, "conversation {c} moved although its key stayed");
            }
        }
        let later = now + Duration::from_secs(60);
        let after: Vec<usize> = (0..1000).map(|c| pick(&p, c, later)).collect();
        assert_eq!(after, before, "the key got its conversations back");
    }

    #[test]
    fn key_order_in_the_file_does_not_move_conversations() {
        let now = Instant::now();
        let a = KeyPool::new(
            vec![PoolKey::new(None, "sk-a"), PoolKey::new(None, "sk-b")],
            Balance::Sticky,
            HealthConfig::default(),
        );
        let b = KeyPool::new(
            vec![PoolKey::new(None, "sk-b"), PoolKey::new(None, "sk-a")],
            Balance::Sticky,
            HealthConfig::default(),
        );
        for c in 0..100 {
            assert_eq!(pick(&a, c, now), 1 - pick(&b, c, now));
        }
    }

    #[test]
    fn unauthorized_disables_and_is_reported_once() {
        let p = pool(3, Balance::RoundRobin);
        let now = Instant::now();
        assert_eq!(
            p.report(1, Outcome::Unauthorized(401), now),
            Some(Change::Disabled { status: 401 })
        );
        assert_eq!(p.report(1, Outcome::Unauthorized(401), now), None);
        for c in 0..100 {
            assert_ne!(pick(&p, c, now + Duration::from_secs(c * 3600)), 1);
        }
        assert_eq!(p.state(now)[1].health, Health::Disabled { status: 401 });
        assert_eq!(p.state(now)[1].label.as_deref(), Some("k1"));
    }

    #[test]
    fn rate_limited_keys_cool_for_retry_after_then_return() {
        let p = pool(2, Balance::Sticky);
        let now = Instant::now();
        let c = (0..).find(|&c| pick(&p, c, now) == 0).unwrap();
        p.report(0, Outcome::RateLimited(Some(Duration::from_secs(20))), now);
        assert_eq!(pick(&p, c, now + Duration::from_secs(19)), 1);
        assert_eq!(pick(&p, c, now + Duration::from_secs(20)), 0);
        // Both cooling: nothing to pick, and when to come back.
        p.report(0, Outcome::RateLimited(None), now);
        p.report(1, Outcome::RateLimited(Some(Duration::from_secs(5))), now);
        match p.pick(c, now, &[]) {
            Pick::Unavailable {
                retry_at,
                all_cooling,
            } => {
                assert!(all_cooling);
                assert_eq!(retry_at, Some(now + Duration::from_secs(5)));
            }
            Pick::Key(k) => panic!("picked {k:?}"),
        }
        assert_eq!(
            p.state(now)[0].shared(),
            Some(SharedState::Cooling {
                until: now + Duration::from_secs(30)
            })
        );
    }

    #[test]
    fn excluded_and_disabled_keys_leave_nothing_but_not_all_cooling() {
        let p = pool(2, Balance::Sticky);
        let now = Instant::now();
        p.report(0, Outcome::Unauthorized(403), now);
        let Pick::Unavailable {
            retry_at,
            all_cooling,
        } = p.pick(7, now, &[1])
        else {
            panic!("key 1 is excluded, key 0 disabled")
        };
        assert_eq!((retry_at, all_cooling), (None, false));
        assert!(matches!(
            pool(0, Balance::LeastBusy).pick(1, now, &[]),
            Pick::Unavailable { .. }
        ));
    }

    #[test]
    fn breaker_opens_after_three_failures_and_lets_one_trial_through() {
        let p = pool(2, Balance::Sticky);
        let now = Instant::now();
        let c = (0..).find(|&c| pick(&p, c, now) == 0).unwrap();
        for _ in 0..2 {
            assert_eq!(p.report(0, Outcome::Failure, now), None);
        }
        assert_eq!(pick(&p, c, now), 0, "two failures are not enough");
        assert!(matches!(
            p.report(0, Outcome::Failure, now),
            Some(Change::BreakerOpened { .. })
        ));
        assert_eq!(pick(&p, c, now + Duration::from_secs(9)), 1);
        let half_open = now + Duration::from_secs(10);
        let trial = p.pick(c, half_open, &[]).key().unwrap();
        assert_eq!(trial.index(), 0);
        assert!(trial.is_trial());
        // While the trial is out, everyone else goes to key 1.
        for _ in 0..10 {
            assert_eq!(pick(&p, c, half_open), 1);
        }
        assert_eq!(
            trial.report(Outcome::Success, half_open),
            Some(Change::BreakerClosed)
        );
        let after = p.pick(c, half_open, &[]).key().unwrap();
        assert!(after.index() == 0 && !after.is_trial());
    }

    #[test]
    fn a_dropped_trial_lets_the_next_request_try() {
        let p = pool(1, Balance::Sticky);
        let now = Instant::now();
        for _ in 0..3 {
            p.report(0, Outcome::Failure, now);
        }
        let later = now + Duration::from_secs(10);
        let trial = p.pick(1, later, &[]).key().unwrap();
        assert!(matches!(
            p.pick(1, later, &[]),
            Pick::Unavailable {
                all_cooling: false,
                ..
            }
        ));
        drop(trial);
        assert!(p.pick(1, later, &[]).key().unwrap().is_trial());
    }

    #[test]
    fn least_busy_picks_the_fewest_in_flight_ties_in_turn() {
        let p = pool(3, Balance::LeastBusy);
        let now = Instant::now();
        let a = p.pick(0, now, &[]).key().unwrap();
        let b = p.pick(0, now, &[]).key().unwrap();
        let mut held = vec![a, b];
        let third = p.pick(0, now, &[]).key().unwrap();
        let mut seen: Vec<usize> = held.iter().map(KeyLease::index).collect();
        seen.push(third.index());
        seen.sort();
        assert_eq!(seen, [0, 1, 2], "each idle key once");
        held.push(third);
        // Free key 1: it is now the least busy, every time.
        held.retain(|l| l.index() != 1);
        for _ in 0..5 {
            assert_eq!(pick(&p, 0, now), 1);
        }
        assert_eq!(p.state(now)[0].in_flight, 1);
        drop(held);
        assert!(p.state(now).iter().all(|k| k.in_flight == 0));
    }

    #[test]
    fn round_robin_takes_turns_over_healthy_keys() {
        let p = pool(3, Balance::RoundRobin);
        let now = Instant::now();
        p.report(1, Outcome::Unauthorized(401), now);
        let picks: Vec<usize> = (0..6).map(|_| pick(&p, 0, now)).collect();
        assert_eq!(picks.iter().filter(|&&k| k == 0).count(), 3, "{picks:?}");
        assert_eq!(picks.iter().filter(|&&k| k == 2).count(), 3, "{picks:?}");
    }

    #[test]
    fn never_a_disabled_key_while_a_healthy_one_exists() {
        let now = Instant::now();
        for balance in [Balance::Sticky, Balance::LeastBusy, Balance::RoundRobin] {
            let p = pool(4, balance);
            for k in [0, 1, 3] {
                p.report(k, Outcome::Unauthorized(401), now);
            }
            for c in 0..200 {
                assert_eq!(pick(&p, c, now), 2, "{balance:?}");
            }
        }
    }

    #[test]
    fn debug_output_never_shows_key_text() {
        let p = KeyPool::new(
            vec![PoolKey::new(Some("team-a".into()), "sk-live-SECRET")],
            Balance::Sticky,
            HealthConfig::default(),
        );
        let lease = p.pick(1, Instant::now(), &[]).key().unwrap();
        let text = format!("{p:?} {lease:?} {:?}", p.state(Instant::now()));
        assert!(
            text.contains("team-a") && !text.contains("SECRET"),
            "{text}"
        );
        assert_eq!(
            serde_yaml_ng::from_str::<Balance>("least_busy").unwrap(),
            Balance::LeastBusy
        );
    }

    #[test]
    fn the_pool_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<KeyPool>();
        check::<KeyLease>();
        check::<super::super::CompiledWhen>();
    }
}
