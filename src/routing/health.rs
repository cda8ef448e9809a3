//! The health of one provider key: what the provider's answers did to it, and whether a
//! request may use it now. Atomics only, so choosing a key never waits on a lock.
//!
//! - 401/403 disable the key until the pool is rebuilt (the adapter file changed); the first
//!   such answer reports [`Change::Disabled`], later ones nothing, so it is logged once.
//! - 429 cools the key until the provider's `retry-after` (or [`HealthConfig::default_cooldown`]).
//! - Connect errors, timeouts and 5xx before any byte count toward a circuit breaker: after
//!   [`HealthConfig::failure_threshold`] in a row it opens for [`HealthConfig::breaker_pause`],
//!   then half-opens: exactly one trial request goes through; success closes it, failure
//!   re-opens it for another pause.

use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the provider did with a request on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer that is not one of the below (a 400 is the request's fault, not the key's).
    Success,
    /// 401 or 403: the key is revoked or lacks permission.
    Unauthorized(u16),
    /// 429, with the provider's `retry-after` if it sent one.
    RateLimited(Option<Duration>),
    /// Connect error, timeout, or a 5xx before any byte reached the client.
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub failure_threshold: u32,
    pub breaker_pause: Duration,
    /// A 429 without `retry-after`.
    pub default_cooldown: Duration,
    /// Longer `retry-after`s are cut to this (a garbage value must not bench a key for years).
    pub max_cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failure_threshold: 3,
            breaker_pause: Duration::from_secs(10),
            default_cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(24 * 3600),
        }
    }
}

/// A key's state as the panel, `/metrics` and `adapter show` present it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Disabled {
        status: u16,
    },
    Cooling {
        until: Instant,
    },
    BreakerOpen {
        until: Instant,
    },
    /// The breaker's pause is over; one trial request may go (or is under way).
    HalfOpen {
        trial_in_flight: bool,
    },
}

/// A state change worth a log line (and, for the first two, sharing with other instances).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Disabled { status: u16 },
    Cooling { until: Instant },
    BreakerOpened { until: Instant },
    BreakerClosed,
}

/// The part of a key's state other instances should know (shared through Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    Disabled { status: u16 },
    Cooling { until: Instant },
}

/// Instants as signed nanoseconds from the pool's creation, so they fit in an atomic.
pub(crate) struct Clock {
    epoch: Instant,
}

/// "No time set" in a tick field.
pub(crate) const NONE: i64 = i64::MIN;
/// Far enough to never overflow when a pause is added.
const FAR: i64 = i64::MAX / 2;

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub(crate) fn tick(&self, t: Instant) -> i64 {
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(FAR).min(FAR);
        match t.checked_duration_since(self.epoch) {
            Some(d) => nanos(d),
            None => -nanos(self.epoch.duration_since(t)),
        }
    }

    pub(crate) fn instant(&self, tick: i64) -> Instant {
        let d = Duration::from_nanos(tick.unsigned_abs());
        let t = if tick >= 0 {
            self.epoch.checked_add(d)
        } else {
            self.epoch.checked_sub(d)
        };
        t.unwrap_or(self.epoch)
    }
}

fn after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(FAR).min(FAR))
}

/// Whether a request may use the key now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Availability {
    Ready,
    /// Half-open: usable only by the request that claims the trial of this open period.
    Trial(i64),
    Blocked,
}

pub(crate) struct KeyHealth {
    /// 0, or the status that disabled it.
    disabled: AtomicU16,
    cool_until: AtomicI64,
    /// Consecutive failures while the breaker is closed.
    failures: AtomicU32,
    /// `NONE` when closed; else open until then, half-open after.
    open_until: AtomicI64,
    /// The `open_until` whose trial is claimed: a new open period is unclaimed by itself.
    trial: AtomicI64,
    pub(crate) in_flight: AtomicU32,
}

impl KeyHealth {
    pub(crate) fn new() -> Self {
        KeyHealth {
            disabled: AtomicU16::new(0),
            cool_until: AtomicI64::new(NONE),
            failures: AtomicU32::new(0),
            open_until: AtomicI64::new(NONE),
            trial: AtomicI64::new(NONE),
            in_flight: AtomicU32::new(0),
        }
    }

    pub(crate) fn availability(&self, now: i64) -> Availability {
        if self.disabled.load(Relaxed) != 0 || self.cool_until.load(Relaxed) > now {
            return Availability::Blocked;
        }
        match self.open_until.load(Relaxed) {
            NONE => Availability::Ready,
            open if now < open => Availability::Blocked,
            open if self.trial.load(Relaxed) == open => Availability::Blocked,
            open => Availability::Trial(open),
        }
    }

    /// Takes the one trial of the open period `open`; false if another request was first.
    pub(crate) fn claim_trial(&self, open: i64) -> bool {
        let prev = self.trial.load(Relaxed);
        prev != open
            && self
                .trial
                .compare_exchange(prev, open, Relaxed, Relaxed)
                .is_ok()
    }

    /// A trial ended without an outcome (the client went away): let another request try.
    pub(crate) fn release_trial(&self, open: i64) {
        let _ = self.trial.compare_exchange(open, NONE, Relaxed, Relaxed);
    }

    pub(crate) fn report(
        &self,
        outcome: Outcome,
        now: i64,
        cfg: &HealthConfig,
        clock: &Clock,
    ) -> Option<Change> {
        match outcome {
            Outcome::Success => {
                self.failures.store(0, Relaxed);
                (self.open_until.swap(NONE, Relaxed) != NONE).then_some(Change::BreakerClosed)
            }
            Outcome::Unauthorized(status) => {
                let status = status.max(1);
                let first = self.disabled.compare_exchange(0, status, Relaxed, Relaxed);
                first.is_ok().then_some(Change::Disabled { status })
            }
            Outcome::RateLimited(retry_after) => {
                // The provider answered: whatever the breaker feared is over.
                self.failures.store(0, Relaxed);
                self.open_until.store(NONE, Relaxed);
                let wait = retry_after
                    .unwrap_or(cfg.default_cooldown)
                    .min(cfg.max_cooldown);
                let until = after(now, wait);
                let prev = self.cool_until.fetch_max(until, Relaxed);
                (prev < until).then(|| Change::Cooling {
                    until: clock.instant(until),
                })
            }
            Outcome::Failure => {
                let until = after(now, cfg.breaker_pause);
                let opened = |from| {
                    let swapped = self
                        .open_until
                        .compare_exchange(from, until, Relaxed, Relaxed);
                    swapped.is_ok().then(|| Change::BreakerOpened {
                        until: clock.instant(until),
                    })
                };
                match self.open_until.load(Relaxed) {
                    // The trial (or a straggler after the pause) failed: another pause.
                    open if open != NONE && now >= open => opened(open),
                    // A straggler from before the breaker opened.
                    open if open != NONE => None,
                    _ => {
                        let n = self.failures.fetch_add(1, Relaxed) + 1;
                        if n < cfg.failure_threshold.max(1) {
                            return None;
                        }
                        self.failures.store(0, Relaxed);
                        opened(NONE)
                    }
                }
            }
        }
    }

    pub(crate) fn apply_shared(&self, shared: SharedState, clock: &Clock) {
        match shared {
            SharedState::Disabled { status } => {
                let _ = self
                    .disabled
                    .compare_exchange(0, status.max(1), Relaxed, Relaxed);
            }
            SharedState::Cooling { until } => {
                self.cool_until.fetch_max(clock.tick(until), Relaxed);
            }
        }
    }

    pub(crate) fn health(&self, now: i64, clock: &Clock) -> Health {
        let disabled = self.disabled.load(Relaxed);
        let cool = self.cool_until.load(Relaxed);
        let open = self.open_until.load(Relaxed);
        if disabled != 0 {
            Health::Disabled { status: disabled }
        } else if cool > now {
            Health::Cooling {
                until: clock.instant(cool),
            }
        } else if open == NONE {
            Health::Healthy
        } else if now < open {
            Health::BreakerOpen {
                until: clock.instant(open),
            }
        } else {
            Health::HalfOpen {
                trial_in_flight: self.trial.load(Relaxed) == open,
            }
        }
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Relaxed)
    }
}

/// The wait a provider asked for in a 429: `retry-after-ms` (OpenAI), else `retry-after` in
/// seconds or as an HTTP date. `None` when neither is there or readable.
pub fn retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| seconds(v, 1e-3)) {
        return Some(ms);
    }
    parse_retry_after(get("retry-after")?, now)
}

/// A `retry-after` value: delay seconds (fractions accepted, as some providers send them) or
/// an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past is zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(d) = seconds(value, 1.0) {
        return Some(d);
    }
    let at = UNIX_EPOCH + Duration::from_secs(http_date(value)?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn seconds(value: &str, unit: f64) -> Option<Duration> {
    let n: f64 = value.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64((n * unit).min(1e9)))
}

/// Unix seconds of an IMF-fixdate.
fn http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = s.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if zone != "GMT" || it.next().is_some() {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), March-based years.
    let (y, mp) = if month > 2 {
        (year, month - 3)
    } else {
        (year - 1, month + 9)
    };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (KeyHealth, Clock, HealthConfig) {
        (KeyHealth::new(), Clock::new(), HealthConfig::default())
    }

    #[test]
    fn clock_round_trips_before_and_after_its_epoch() {
        let clock = Clock::new();
        let later = clock.epoch + Duration::from_millis(1500);
        assert_eq!(clock.instant(clock.tick(later)), later);
        if let Some(earlier) = clock.epoch.checked_sub(Duration::from_millis(7)) {
            assert_eq!(clock.tick(earlier), -7_000_000);
            assert_eq!(clock.instant(clock.tick(earlier)), earlier);
        }
    }

    #[test]
    fn unauthorized_disables_once() {
        let (k, clock, cfg) = setup();
        let r = |o| k.report(o, 0, &cfg, &clock);
        assert_eq!(
            r(Outcome::Unauthorized(401)),
            Some(Change::Disabled { status: 401 })
        );
        assert_eq!(r(Outcome::Unauthorized(403)), None, "reported once");
        assert_eq!(r(Outcome::Success), None);
        assert_eq!(k.availability(i64::MAX / 4), Availability::Blocked);
        assert_eq!(k.health(0, &clock), Health::Disabled { status: 401 });
    }

    #[test]
    fn rate_limit_cools_for_retry_after_or_the_default() {
        let (k, clock, cfg) = setup();
        let s = 1_000_000_000;
        k.report(
            Outcome::RateLimited(Some(Duration::from_secs(5))),
            0,
            &cfg,
            &clock,
        );
        assert_eq!(k.availability(5 * s - 1), Availability::Blocked);
        assert_eq!(k.availability(5 * s), Availability::Ready);
        k.report(Outcome::RateLimited(None), 10 * s, &cfg, &clock);
        assert_eq!(k.availability(39 * s), Availability::Blocked);
        assert_eq!(k.availability(40 * s), Availability::Ready);
        // A shorter retry-after never shortens a cooldown.
        let c = k.report(
            Outcome::RateLimited(Some(Duration::from_secs(1))),
            11 * s,
            &cfg,
            &clock,
        );
        assert_eq!(c, None);
        assert_eq!(k.availability(39 * s), Availability::Blocked);
    }

    #[test]
    fn breaker_opens_after_three_failures_and_half_opens_one_trial() {
        let (k, clock, cfg) = setup();
        let s = 1_000_000_000;
        assert_eq!(k.report(Outcome::Failure, 0, &cfg, &clock), None);
        // A success in between resets the count.
        k.report(Outcome::Success, 0, &cfg, &clock);
        k.report(Outcome::Failure, 0, &cfg, &clock);
        k.report(Outcome::Failure, 0, &cfg, &clock);
        assert_eq!(k.availability(0), Availability::Ready);
        let opened = k.report(Outcome::Failure, s, &cfg, &clock);
        assert!(matches!(opened, Some(Change::BreakerOpened { .. })));
        assert_eq!(k.availability(10 * s), Availability::Blocked);
        // A straggler's failure while open changes nothing.
        assert_eq!(k.report(Outcome::Failure, 2 * s, &cfg, &clock), None);
        let Availability::Trial(open) = k.availability(11 * s) else {
            panic!("half-open after the pause")
        };
        assert!(k.claim_trial(open));
        assert!(!k.claim_trial(open), "exactly one trial");
        assert_eq!(k.availability(11 * s), Availability::Blocked);
        assert_eq!(
            k.health(11 * s, &clock),
            Health::HalfOpen {
                trial_in_flight: true
            }
        );
        // The trial fails: open again for a pause.
        assert!(matches!(
            k.report(Outcome::Failure, 12 * s, &cfg, &clock),
            Some(Change::BreakerOpened { .. })
        ));
        assert_eq!(k.availability(21 * s), Availability::Blocked);
        let Availability::Trial(open) = k.availability(22 * s) else {
            panic!("half-open again")
        };
        assert!(k.claim_trial(open));
        assert_eq!(
            k.report(Outcome::Success, 22 * s, &cfg, &clock),
            Some(Change::BreakerClosed)
        );
        assert_eq!(k.availability(22 * s), Availability::Ready);
        assert_eq!(k.health(22 * s, &clock), Health::Healthy);
    }

    #[test]
    fn an_abandoned_trial_is_released() {
        let (k, clock, cfg) = setup();
        for _ in 0..3 {
            k.report(Outcome::Failure, 0, &cfg, &clock);
        }
        let s = 1_000_000_000;
        let Availability::Trial(open) = k.availability(10 * s) else {
            panic!()
        };
        assert!(k.claim_trial(open));
        k.release_trial(open);
        assert_eq!(k.availability(10 * s), Availability::Trial(open));
    }

    #[test]
    fn shared_state_applies() {
        let (k, clock, _) = setup();
        let until = clock.epoch + Duration::from_secs(3);
        k.apply_shared(SharedState::Cooling { until }, &clock);
        assert_eq!(k.health(0, &clock), Health::Cooling { until });
        k.apply_shared(SharedState::Disabled { status: 403 }, &clock);
        assert_eq!(k.health(0, &clock), Health::Disabled { status: 403 });
    }

    #[test]
    fn retry_after_values() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21 07:27:50 UTC
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("7"), Some(Duration::from_secs(7)));
        assert_eq!(p(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(
            p("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(p("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        for bad in [
            "",
            "-3",
            "soon",
            "NaN",
            "Wed, 21 Oct 2015 07:28:00 PST",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "20".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(20)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
    }
}
