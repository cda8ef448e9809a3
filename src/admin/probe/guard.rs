//! The provider check's limits: one check at a time per adapter (in this process), and a few
//! checks per panel user in a window, since each check sends real, billed requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Checks one user may start in [`USER_WINDOW`].
pub const USER_CHECKS: usize = 5;
pub const USER_WINDOW: Duration = Duration::from_secs(600);

static RUNNING: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static STARTED: Mutex<Option<HashMap<String, VecDeque<Instant>>>> = Mutex::new(None);

/// Held while a check of one adapter runs; dropping it lets the next one start.
pub struct Running(String);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = running.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// Marks `adapter` as being checked; `None` while another check of it runs.
pub fn start(adapter: &str) -> Option<Running> {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    running
        .get_or_insert_with(HashSet::new)
        .insert(adapter.to_owned())
        .then(|| Running(adapter.to_owned()))
}

/// Counts a check by `user`; refused with the time until one may start again once they
/// started [`USER_CHECKS`] in the last [`USER_WINDOW`].
pub fn allow_user(user: &str) -> Result<(), Duration> {
    allow_at(user, Instant::now())
}

fn allow_at(user: &str, now: Instant) -> Result<(), Duration> {
    let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
    let times = started
        .get_or_insert_with(HashMap::new)
        .entry(user.to_owned())
        .or_default();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= USER_WINDOW)
    {
        times.pop_front();
    }
    if times.len() >= USER_CHECKS {
        let oldest = times.front().copied().unwrap_or(now);
        return Err(USER_WINDOW.saturating_sub(now.duration_since(oldest)));
    }
    times.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_check_per_adapter_at_a_time() {
        let first = start("guard-test-a").unwrap();
        assert!(start("guard-test-a").is_none());
        assert!(start("guard-test-b").is_some());
        drop(first);
        assert!(start("guard-test-a").is_some());
    }

    #[test]
    fn a_user_gets_a_few_checks_per_window() {
        let t0 = Instant::now();
        for _ in 0..USER_CHECKS {
            allow_at("guard-test-user", t0).unwrap();
        }
        let wait = allow_at("guard-test-user", t0 + Duration::from_secs(60)).unwrap_err();
        assert_eq!(wait, USER_WINDOW - Duration::from_secs(60));
        allow_at("guard-test-other", t0).unwrap();
        allow_at("guard-test-user", t0 + USER_WINDOW).unwrap();
    }
}
