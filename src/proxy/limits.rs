//! Request limits: per key (or per adapter) requests per minute and concurrent requests, with
//! Pingora's own estimators (`pingora-limits`), plus the overall concurrency cap. Limits come
//! from the request's config snapshot, so they change with the adapter file.
//!
//! A limit of N admits N, not more, under any concurrency: the per-key checks run one at a
//! time. pingora-limits' estimators bump several counters per key without a lock and report
//! the smallest, so two concurrent checks can each see the last slot free (the unit test below
//! caught a limit of 100 admitting 101 on a loaded machine). The lock is held for two counter
//! updates, and only by requests whose key has a limit.

use super::errors::ProxyError;
use crate::config::adapter::{Adapter, KeyEntry, Limits};
use crate::protocol::anthropic::ErrorKind;
use pingora_limits::inflight::{Guard, Inflight};
use pingora_limits::rate::Rate;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(60);

pub struct Limiter {
    rpm: Rate,
    concurrent: Inflight,
    /// Serializes the per-key checks (see the module doc).
    checks: std::sync::Mutex<()>,
    overall: Arc<AtomicUsize>,
    max_overall: usize,
}

/// Holds the request's concurrency slots; dropping it releases them.
pub struct Admission {
    _key_slot: Option<Guard>,
    _overall: Option<OverallSlot>,
    /// A concurrency lease in the shared limiter.
    pub lease: Option<super::shared_limits::Lease>,
}

struct OverallSlot(Arc<AtomicUsize>);

impl Drop for OverallSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which limit refused a request (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Overall,
    RequestsPerMinute,
    Concurrency,
    TokenBudget,
    /// `searches_per_day`: a search refused, not the request.
    SearchesPerDay,
    /// A per-user quota (`accounts.default_quota`, a user's `quota:`).
    UserQuota,
    /// The shared limiter's backend did not answer (`fail_closed`).
    Unavailable,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Overall => "overall",
            Refusal::RequestsPerMinute => "rpm",
            Refusal::Concurrency => "concurrency",
            Refusal::TokenBudget => "tokens",
            Refusal::SearchesPerDay => "searches_per_day",
            Refusal::UserQuota => "user_quota",
            Refusal::Unavailable => "unavailable",
        }
    }
}

/// The limits that apply to a request and the scope they count in: the key's own limits or
/// the adapter's, per key (`adapter/<hash prefix>`) unless `per_key: false` (`adapter`).
pub fn scope_of(adapter: &Adapter, key: &KeyEntry) -> Option<(String, Limits)> {
    let limits: Limits = key.limits.unwrap_or(adapter.limits);
    if limits.is_empty() {
        return None;
    }
    let scope = if limits.per_key {
        format!("{}/{}", adapter.name, hex::encode(&key.hash[..8]))
    } else {
        adapter.name.clone()
    };
    Some((scope, limits))
}

impl Limiter {
    /// `max_overall`: concurrent requests across all adapters (0 = unlimited).
    pub fn new(max_overall: usize) -> Self {
        Limiter {
            rpm: Rate::new(WINDOW),
            concurrent: Inflight::new(),
            checks: std::sync::Mutex::new(()),
            overall: Arc::new(AtomicUsize::new(0)),
            max_overall,
        }
    }

    /// The overall concurrency cap: taken first, before anything else is spent on a request.
    pub fn admit_overall(&self) -> Result<Admission, (ProxyError, Refusal)> {
        if self.max_overall == 0 {
            return Ok(Admission {
                _key_slot: None,
                _overall: None,
                lease: None,
            });
        }
        let now = self.overall.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = OverallSlot(self.overall.clone());
        if now > self.max_overall {
            drop(slot);
            let e = ProxyError::new(
                ErrorKind::Overloaded,
                "the proxy is at its concurrent request limit",
            )
            .with_status(529)
            .with_retry_after("1");
            return Err((e, Refusal::Overall));
        }
        Ok(Admission {
            _key_slot: None,
            _overall: Some(slot),
            lease: None,
        })
    }

    /// The adapter's and key's limits; adds the key's concurrency slot to `admission`.
    pub fn admit(
        &self,
        adapter: &Adapter,
        key: &KeyEntry,
        admission: &mut Admission,
    ) -> Result<(), (ProxyError, Refusal)> {
        let limits: Limits = key.limits.unwrap_or(adapter.limits);
        if limits.requests_per_minute.is_none() && limits.concurrent_requests.is_none() {
            return Ok(());
        }
        // Per key by default; `per_key: false` shares the limit across the adapter's keys.
        let scope: (&str, Option<[u8; 8]>) = if limits.per_key {
            (
                &adapter.name,
                Some(key.hash[..8].try_into().unwrap_or_default()),
            )
        } else {
            (&adapter.name, None)
        };
        let _one_at_a_time = crate::lock(&self.checks);
        if let Some(max) = limits.requests_per_minute {
            let seen = self.rpm.observe(&scope, 1);
            if seen > max as isize {
                let retry = self.rpm.rate_with(&scope, |c| {
                    let left =
                        (1.0 - c.current_interval_fraction).max(0.0) * c.interval.as_secs_f64();
                    left.ceil().max(1.0) as u64
                });
                let e = ProxyError::new(
                    ErrorKind::RateLimit,
                    format!("rate limit of {max} requests per minute reached"),
                )
                .with_retry_after(retry.to_string());
                return Err((e, Refusal::RequestsPerMinute));
            }
        }
        if let Some(max) = limits.concurrent_requests {
            let (guard, now) = self.concurrent.incr(scope, 1);
            if now > max as isize {
                drop(guard);
                let e = ProxyError::new(
                    ErrorKind::RateLimit,
                    format!("limit of {max} concurrent requests reached"),
                )
                .with_retry_after("1");
                return Err((e, Refusal::Concurrency));
            }
            admission._key_slot = Some(guard);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::adapter::parse_adapter;
    use std::path::Path;

    fn adapter(limits: &str) -> Adapter {
        let text = format!(
            "source:\n  base_url: http://127.0.0.1:1/v1\n  api_key: k\n  model: m\nkeys:\n  - sha256: {}\n  - sha256: {}\nlimits:\n{limits}",
            "a".repeat(64),
            "b".repeat(64)
        );
        parse_adapter(Path::new("x.yaml"), &text, &|_| None).unwrap()
    }

    #[test]
    fn rpm_admits_exactly_the_limit_under_concurrency() {
        let a = Arc::new(adapter("  requests_per_minute: 100\n"));
        let limiter = Arc::new(Limiter::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..10)
            .map(|_| {
                let (a, limiter, admitted) = (a.clone(), limiter.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let mut adm = limiter.admit_overall().unwrap();
                        if limiter.admit(&a, &a.keys[0], &mut adm).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 100);
        // Another key has its own budget; with per_key: false they would share it.
        let mut adm = limiter.admit_overall().unwrap();
        assert!(limiter.admit(&a, &a.keys[1], &mut adm).is_ok());
        let shared = adapter("  requests_per_minute: 1\n  per_key: false\n");
        let mut adm = limiter.admit_overall().unwrap();
        assert!(limiter.admit(&shared, &shared.keys[0], &mut adm).is_ok());
        let (e, which) = limiter
            .admit(&shared, &shared.keys[1], &mut adm)
            .err()
            .unwrap();
        assert_eq!((e.status, which), (429, Refusal::RequestsPerMinute));
        assert!(e.retry_after.unwrap().parse::<u64>().unwrap() <= 60);
    }

    #[test]
    fn concurrency_slots_are_released() {
        let a = adapter("  concurrent_requests: 2\n");
        let limiter = Limiter::new(0);
        let mut first = limiter.admit_overall().unwrap();
        let mut second = limiter.admit_overall().unwrap();
        let mut third = limiter.admit_overall().unwrap();
        limiter.admit(&a, &a.keys[0], &mut first).unwrap();
        limiter.admit(&a, &a.keys[0], &mut second).unwrap();
        assert!(limiter.admit(&a, &a.keys[0], &mut third).is_err());
        drop(first);
        let mut fourth = limiter.admit_overall().unwrap();
        assert!(limiter.admit(&a, &a.keys[0], &mut fourth).is_ok());
    }

    #[test]
    fn overall_cap() {
        let limiter = Limiter::new(1);
        let held = limiter.admit_overall().unwrap();
        let (e, which) = limiter.admit_overall().err().unwrap();
        assert_eq!((e.status, which), (529, Refusal::Overall));
        drop(held);
        assert!(limiter.admit_overall().is_ok());
    }
}
