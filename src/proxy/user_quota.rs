//! Per-user quotas (issue #27): `accounts.default_quota`, or a user's own `quota:` in the users
//! file, caps what all of a user's adapters (their `owner`) do together — requests per UTC
//! day, tokens and cost per UTC calendar month. Counted with the token budgets' machinery
//! (`budget`, `shared_limits`): a request reserves one request, its worst-case tokens and its
//! worst-case cost before it goes upstream, all or none, and settles to what the provider
//! reported when it ends; in this process by default, in Redis (shared by every instance)
//! with `limits.backend: redis`. A request whose cost is unknown (no price for its model)
//! counts 0 toward the cost quota, and still counts toward the requests and tokens quotas.

use super::budget::{self, LocalBudgets, Reservation, Window};
use super::errors::ProxyError;
use super::limits::Refusal;
use super::shared_limits::{Denied, SharedLimiter};
use crate::config::accounts::QuotaFile;
use crate::config::users::UsersStore;
use crate::protocol::anthropic::ErrorKind;
use std::sync::Arc;
use time::OffsetDateTime;

/// Costs are counted in millionths of the currency (the counters are integers).
const COST_UNIT: f64 = 1e6;

fn to_units(cost: f64) -> u64 {
    // `as` saturates, and a NaN becomes 0: no input panics.
    (cost * COST_UNIT).ceil().max(0.0) as u64
}

/// Which quota a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Requests,
    Tokens,
    Cost,
}

/// The per-user quotas and their counters, shared by the proxy and the admin listener.
pub struct Quotas {
    default: Option<QuotaFile>,
    users: Arc<UsersStore>,
    local: LocalBudgets,
    shared: Option<Arc<SharedLimiter>>,
    currency: String,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// What a request reserved in its owner's quotas, settled when it ends.
#[derive(Debug)]
pub struct QuotaReservation {
    parts: Vec<(Kind, Reservation)>,
}

/// A user's quota and what they used of it in the current day and month.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuotaUsage {
    pub requests_today: u64,
    pub tokens_this_month: u64,
    pub cost_this_month: f64,
    pub currency: String,
    /// When the day's and the month's windows end (RFC 3339, UTC).
    pub day_resets: String,
    pub month_resets: String,
}

fn scope(user: &str, kind: Kind) -> String {
    let what = match kind {
        Kind::Requests => "requests",
        Kind::Tokens => "tokens",
        Kind::Cost => "cost",
    };
    // `@` is in no adapter's name: never an adapter budget's counter.
    format!("@quota/{user}/{what}")
}

/// The instant a window ends, as `2026-12-08T00:00:00Z` (`seconds_left` is whole seconds,
/// rounded down: a second more is past midnight, not before it).
fn resets_at(window: &Window, now: OffsetDateTime) -> String {
    let secs = window.seconds_left.saturating_add(1).min(i64::MAX as u64) as i64;
    let end = now.saturating_add(time::Duration::seconds(secs));
    format!("{}T00:00:00Z", end.date())
}

impl Quotas {
    pub fn new(
        default: Option<QuotaFile>,
        users: Arc<UsersStore>,
        shared: Option<Arc<SharedLimiter>>,
        currency: &str,
    ) -> Arc<Quotas> {
        Arc::new(Quotas {
            default,
            users,
            local: LocalBudgets::default(),
            shared,
            currency: currency.to_owned(),
        })
    }

    /// The quota that applies to `user`: their own, else the default; `None` when unlimited.
    pub fn quota_of(&self, user: &str) -> Option<QuotaFile> {
        let users = self.users.current();
        let q = match users.get(user)?.quota {
            Some(own) => own,
            None => self.default?,
        };
        (!q.is_empty()).then_some(q)
    }

    fn windows(user: &str, q: &QuotaFile, now: OffsetDateTime) -> Vec<(Kind, Window)> {
        let mut out = Vec::new();
        if let Some(n) = q.requests_per_day {
            out.push((
                Kind::Requests,
                budget::day(&scope(user, Kind::Requests), n, now),
            ));
        }
        if let Some(n) = q.tokens_per_month {
            out.push((
                Kind::Tokens,
                budget::month(&scope(user, Kind::Tokens), n, now),
            ));
        }
        if let Some(c) = q.cost_per_month {
            out.push((
                Kind::Cost,
                budget::month(&scope(user, Kind::Cost), to_units(c), now),
            ));
        }
        out
    }

    /// The refusal naming the quota that is full and when it resets (429, `retry-after`).
    fn refusal(&self, user: &str, kind: Kind, window: &Window, now: OffsetDateTime) -> ProxyError {
        let what = match kind {
            Kind::Requests => format!("{} requests per day", window.limit),
            Kind::Tokens => format!("{} tokens per month", window.limit),
            Kind::Cost => format!(
                "{} {} per month",
                window.limit as f64 / COST_UNIT,
                self.currency
            ),
        };
        ProxyError::new(
            ErrorKind::RateLimit,
            format!(
                "user quota reached: `{user}` may use {what}; it resets at {}",
                resets_at(window, now)
            ),
        )
        .with_retry_after(window.seconds_left.to_string())
    }

    /// Reserves one request, `tokens` and `cost` (unknown: 0) in `user`'s quota.
    /// `Ok(None)`: the user has no quota (or Redis failed open).
    pub async fn reserve(
        &self,
        user: &str,
        tokens: u64,
        cost: Option<f64>,
    ) -> Result<Option<QuotaReservation>, Denied> {
        let Some(q) = self.quota_of(user) else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let windows = Self::windows(user, &q, now);
        let items: Vec<(Window, u64)> = windows
            .iter()
            .map(|(kind, w)| {
                let amount = match kind {
                    Kind::Requests => 1,
                    Kind::Tokens => tokens,
                    Kind::Cost => cost.map_or(0, to_units),
                };
                (w.clone(), amount)
            })
            .collect();
        let refuse = |i: usize| {
            let (kind, w) = &windows[i.min(windows.len() - 1)];
            self.refusal(user, *kind, w, now)
        };
        let reserved = match &self.shared {
            Some(shared) => shared.reserve_each(&items, refuse).await?,
            None => Some(
                self.local
                    .reserve_each(&items)
                    .map_err(|i| Denied::Limit(refuse(i), Refusal::UserQuota))?,
            ),
        };
        Ok(reserved.map(|parts| QuotaReservation {
            parts: windows.iter().map(|(k, _)| *k).zip(parts).collect(),
        }))
    }

    /// Settles a reservation: the request stays counted when it went upstream (`sent`);
    /// tokens and cost become what it used (`None`: keep what was reserved).
    pub async fn settle(
        &self,
        reservation: QuotaReservation,
        sent: bool,
        tokens: Option<u64>,
        cost: Option<Option<f64>>,
    ) {
        for (kind, r) in &reservation.parts {
            let actual = match kind {
                Kind::Requests => u64::from(sent),
                Kind::Tokens => tokens.unwrap_or(r.amount),
                Kind::Cost => cost.map_or(r.amount, |c| c.map_or(0, to_units)),
            };
            if actual == r.amount {
                continue;
            }
            match (&self.shared, r.shared) {
                (Some(shared), true) => shared.settle(r, actual).await,
                _ => self.local.settle(r, actual),
            }
        }
    }

    /// `user`'s quota and usage of the current day and month (`None`: no quota). Usage
    /// includes what requests in flight reserved.
    pub async fn usage(&self, user: &str) -> Option<(QuotaFile, QuotaUsage)> {
        let q = self.quota_of(user)?;
        let now = OffsetDateTime::now_utc();
        let all = QuotaFile {
            requests_per_day: Some(u64::MAX),
            tokens_per_month: Some(u64::MAX),
            cost_per_month: Some(0.0),
        };
        let windows: Vec<Window> = Self::windows(user, &all, now)
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        let used = match &self.shared {
            Some(shared) => shared.used(&windows).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "quota usage not read from Redis");
                vec![0; windows.len()]
            }),
            None => windows
                .iter()
                .map(|w| self.local.used(&w.counter))
                .collect(),
        };
        let at = |i: usize| used.get(i).copied().unwrap_or(0);
        Some((
            q,
            QuotaUsage {
                requests_today: at(0),
                tokens_this_month: at(1),
                cost_this_month: at(2) as f64 / COST_UNIT,
                currency: self.currency.clone(),
                day_resets: resets_at(&windows[0], now),
                month_resets: resets_at(&windows[1], now),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(yaml: &str, default: Option<QuotaFile>) -> (tempfile::TempDir, Arc<Quotas>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, yaml).unwrap();
        let q = Quotas::new(default, UsersStore::open(&path), None, "USD");
        (dir, q)
    }

    const USERS: &str = "users:\n  - { name: alice, password: x }\n  - { name: bob, password: x, quota: { requests_per_day: 1 } }\n  - { name: carol, password: x, quota: {} }\n";

    #[tokio::test]
    async fn own_quota_replaces_the_default_and_users_are_apart() {
        let default = QuotaFile {
            requests_per_day: Some(2),
            ..QuotaFile::default()
        };
        let (_d, q) = quotas(USERS, Some(default));
        assert_eq!(q.quota_of("carol"), None, "`quota: {{}}` is unlimited");
        assert_eq!(q.quota_of("nobody"), None);
        assert!(q.reserve("bob", 5, None).await.unwrap().is_some());
        let Err(Denied::Limit(e, Refusal::UserQuota)) = q.reserve("bob", 5, None).await else {
            panic!("bob's second request is over his quota");
        };
        assert_eq!(e.status, 429);
        assert!(e.message.contains("1 requests per day"), "{}", e.message);
        let tomorrow = OffsetDateTime::now_utc().date().next_day().unwrap();
        assert!(
            e.message
                .contains(&format!("resets at {tomorrow}T00:00:00Z")),
            "{}",
            e.message
        );
        // Alice has the default's two, whatever bob did.
        for _ in 0..2 {
            assert!(q.reserve("alice", 5, None).await.is_ok());
        }
        assert!(q.reserve("alice", 5, None).await.is_err());
    }

    #[tokio::test]
    async fn tokens_and_cost_settle_to_what_was_used() {
        let own = QuotaFile {
            tokens_per_month: Some(100),
            cost_per_month: Some(1.0),
            ..QuotaFile::default()
        };
        let (_d, q) = quotas("users:\n  - { name: a, password: x }\n", Some(own));
        let r = q.reserve("a", 80, Some(0.9)).await.unwrap().unwrap();
        assert!(q.reserve("a", 30, None).await.is_err(), "tokens reserved");
        q.settle(r, true, Some(10), Some(Some(0.25))).await;
        let (_, used) = q.usage("a").await.unwrap();
        assert_eq!((used.tokens_this_month, used.cost_this_month), (10, 0.25));
        // An unknown cost counts 0 toward the cost quota, never refused for it.
        let r = q.reserve("a", 10, None).await.unwrap().unwrap();
        q.settle(r, true, Some(10), Some(None)).await;
        let (_, used) = q.usage("a").await.unwrap();
        assert_eq!((used.tokens_this_month, used.cost_this_month), (20, 0.25));
        let Err(Denied::Limit(e, _)) = q.reserve("a", 1, Some(0.8)).await else {
            panic!("over the cost quota");
        };
        assert!(e.message.contains("1 USD per month"), "{}", e.message);
        assert_eq!(to_units(f64::NAN), 0);
        assert_eq!(to_units(-3.0), 0);
    }
}
