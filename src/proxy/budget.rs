//! Token budgets per key (or per adapter): `limits.tokens_per_day` / `tokens_per_month`, in
//! UTC calendar windows (and `searches_per_day`, a day window the gateway's searches take
//! one each of). A request reserves its input estimate plus its `max_tokens` before
//! it goes upstream and settles to the provider's reported usage when it ends, so concurrent
//! requests cannot together spend more than the budget: each one's worst case was counted
//! before it started (the LiteLLM failure: check, then spend, then count). The in-process
//! store is here; the Redis one in `shared_limits` keeps the same windows and arithmetic.

use super::errors::ProxyError;
use crate::config::adapter::Limits;
use crate::protocol::anthropic::ErrorKind;
use std::collections::HashMap;
use std::sync::Mutex;
use time::{Date, Month, OffsetDateTime};

/// Output tokens reserved for a request that sets no `max_tokens` (OpenAI clients may omit it).
pub const DEFAULT_OUTPUT_RESERVATION: u64 = 4096;

/// A budget window of one scope: its counter's name, its limit, its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub counter: String,
    pub limit: u64,
    /// Seconds until the window ends (the `retry-after` of a refusal).
    pub seconds_left: u64,
    pub daily: bool,
}

/// The windows that apply to `scope` now.
pub fn windows(scope: &str, limits: &Limits, now: OffsetDateTime) -> Vec<Window> {
    let mut out = Vec::new();
    if let Some(limit) = limits.tokens_per_day {
        out.push(day(scope, limit, now));
    }
    if let Some(limit) = limits.tokens_per_month {
        out.push(month(scope, limit, now));
    }
    out
}

/// `scope`'s window of the current UTC day.
pub fn day(scope: &str, limit: u64, now: OffsetDateTime) -> Window {
    let date = now.date();
    Window {
        counter: format!("{scope}:d:{date}"),
        limit,
        seconds_left: seconds_until(now, date.next_day().unwrap_or(date)),
        daily: true,
    }
}

/// `scope`'s window of the current UTC calendar month.
pub fn month(scope: &str, limit: u64, now: OffsetDateTime) -> Window {
    let date = now.date();
    let (y, m) = (date.year(), date.month());
    let next = if m == Month::December {
        Date::from_calendar_date(y + 1, Month::January, 1)
    } else {
        Date::from_calendar_date(y, m.next(), 1)
    }
    .unwrap_or(date);
    Window {
        counter: format!("{scope}:m:{y}-{:02}", m as u8),
        limit,
        seconds_left: seconds_until(now, next),
        daily: false,
    }
}

/// The day's window of `limits.searches_per_day` for `scope`: each search the gateway runs
/// takes one, never given back. Its counter ends like a token day's, so pruning keeps it.
pub fn search_window(scope: &str, limits: &Limits, now: OffsetDateTime) -> Option<Window> {
    let limit = limits.searches_per_day?;
    let date = now.date();
    Some(Window {
        counter: format!("{scope}/searches:d:{date}"),
        limit: limit.into(),
        seconds_left: seconds_until(now, date.next_day().unwrap_or(date)),
        daily: true,
    })
}

fn seconds_until(now: OffsetDateTime, date: Date) -> u64 {
    let end = date.midnight().assume_utc();
    (end - now).whole_seconds().max(1) as u64
}

/// The refusal for a full window, in the client's shape (429 with `retry-after`).
pub fn over_budget(window: &Window, amount: u64) -> ProxyError {
    let period = if window.daily { "day" } else { "month" };
    ProxyError::new(
        ErrorKind::RateLimit,
        format!(
            "token budget of {} per {period} reached (this request needs up to {amount} more)",
            window.limit
        ),
    )
    .with_retry_after(window.seconds_left.to_string())
}

/// What a request reserved, to settle when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub counters: Vec<String>,
    pub amount: u64,
    /// Where it was made (so it is settled there).
    pub shared: bool,
}

/// The in-process budget counters.
#[derive(Default)]
pub struct LocalBudgets {
    used: Mutex<HashMap<String, u64>>,
}

impl LocalBudgets {
    pub fn reserve(&self, windows: &[Window], amount: u64) -> Result<Reservation, ProxyError> {
        let mut used = crate::lock(&self.used);
        for w in windows {
            let now = used.get(&w.counter).copied().unwrap_or(0);
            if now + amount > w.limit {
                return Err(over_budget(w, amount));
            }
        }
        for w in windows {
            *used.entry(w.counter.clone()).or_default() += amount;
        }
        prune(&mut used);
        Ok(Reservation {
            counters: windows.iter().map(|w| w.counter.clone()).collect(),
            amount,
            shared: false,
        })
    }

    /// Reserves each window's own amount, all or none (the per-user quotas: one request, its
    /// tokens, its cost); `Err(i)`: window `i` is full.
    pub fn reserve_each(&self, items: &[(Window, u64)]) -> Result<Vec<Reservation>, usize> {
        let mut used = crate::lock(&self.used);
        for (i, (w, amount)) in items.iter().enumerate() {
            let now = used.get(&w.counter).copied().unwrap_or(0);
            if now.saturating_add(*amount) > w.limit {
                return Err(i);
            }
        }
        for (w, amount) in items {
            *used.entry(w.counter.clone()).or_default() += amount;
        }
        prune(&mut used);
        Ok(items
            .iter()
            .map(|(w, amount)| Reservation {
                counters: vec![w.counter.clone()],
                amount: *amount,
                shared: false,
            })
            .collect())
    }

    /// What a counter holds now (reservations in flight included).
    pub fn used(&self, counter: &str) -> u64 {
        crate::lock(&self.used).get(counter).copied().unwrap_or(0)
    }

    pub fn settle(&self, reservation: &Reservation, actual: u64) {
        let mut used = crate::lock(&self.used);
        for c in &reservation.counters {
            if let Some(v) = used.get_mut(c) {
                *v = (*v + actual).saturating_sub(reservation.amount);
            }
        }
    }
}

/// Windows that ended are dead weight: drops the counters of other days and months (every
/// scope's current windows stay).
fn prune(used: &mut HashMap<String, u64>) {
    if used.len() > 10_000 {
        let now = OffsetDateTime::now_utc().date();
        let (day, month) = (
            format!(":d:{now}"),
            format!(":m:{}-{:02}", now.year(), now.month() as u8),
        );
        used.retain(|k, _| k.ends_with(&day) || k.ends_with(&month));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limits(day: Option<u64>, month: Option<u64>) -> Limits {
        Limits {
            tokens_per_day: day,
            tokens_per_month: month,
            ..Limits::default()
        }
    }

    #[test]
    fn windows_end_at_utc_midnight_and_month_start() {
        let now = datetime!(2026-12-31 23:00:00 UTC);
        let w = windows("a/k", &limits(Some(10), Some(100)), now);
        assert_eq!(w[0].counter, "a/k:d:2026-12-31");
        assert_eq!(w[0].seconds_left, 3600);
        assert_eq!(w[1].counter, "a/k:m:2026-12");
        assert_eq!(w[1].seconds_left, 3600);
        let w = windows(
            "a",
            &limits(None, Some(1)),
            datetime!(2026-02-10 00:00:00 UTC),
        );
        assert_eq!(w[0].seconds_left, 19 * 86400);
    }

    #[test]
    fn searches_have_their_own_day_window() {
        let now = datetime!(2026-12-31 23:00:00 UTC);
        let none = limits(Some(10), None);
        assert_eq!(search_window("a/k", &none, now), None);
        let two = Limits {
            searches_per_day: Some(2),
            ..none
        };
        let w = search_window("a/k", &two, now).unwrap();
        assert_eq!(w.counter, "a/k/searches:d:2026-12-31");
        assert_eq!((w.limit, w.seconds_left), (2, 3600));
        // Apart from the token day of the same scope.
        let b = LocalBudgets::default();
        b.reserve(&windows("a/k", &two, now), 10).unwrap();
        b.reserve(std::slice::from_ref(&w), 1).unwrap();
        b.reserve(std::slice::from_ref(&w), 1).unwrap();
        assert!(b.reserve(std::slice::from_ref(&w), 1).is_err());
    }

    #[test]
    fn reservations_never_overshoot_and_settle_down() {
        let b = LocalBudgets::default();
        let w = windows("s", &limits(Some(100), None), OffsetDateTime::now_utc());
        let r1 = b.reserve(&w, 60).unwrap();
        let e = b.reserve(&w, 50).unwrap_err();
        assert_eq!(e.status, 429);
        // The first request used only 10: 90 are free again.
        b.settle(&r1, 10);
        let r2 = b.reserve(&w, 90).unwrap();
        assert!(b.reserve(&w, 1).is_err());
        b.settle(&r2, 90);
        assert!(b.reserve(&w, 1).is_err());
    }

    #[test]
    fn pruning_keeps_every_scope_s_current_window() {
        let b = LocalBudgets::default();
        let now = OffsetDateTime::now_utc();
        let full = windows("full", &limits(Some(10), None), now);
        b.reserve(&full, 10).unwrap();
        // Enough other scopes to trigger pruning, plus a stale window from another day.
        crate::lock(&b.used).insert("old:d:2000-01-01".into(), 5);
        for i in 0..10_001 {
            let w = windows(&format!("s{i}"), &limits(Some(10), Some(10)), now);
            b.reserve(&w, 1).unwrap();
        }
        assert!(b.reserve(&full, 1).is_err(), "the full scope stays full");
        assert!(!crate::lock(&b.used).contains_key("old:d:2000-01-01"));
    }
}
