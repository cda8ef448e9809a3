//! An adapter's last real outcome — did its provider answer the last request, and since when
//! has it been failing — for the panel's and the API's status column. Recorded when a
//! request to the provider ends and when the panel's Test runs; a new version of the
//! adapter's file starts with none (its source may have changed).

use serde::Serialize;
use std::sync::Mutex;
use std::time::SystemTime;

/// Why the provider failed, as the panel explains it (never a provider's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Refused or unreachable.
    Connect,
    Timeout,
    Tls,
    /// The connection closed mid-answer.
    Reset,
    /// An answer that was not one (malformed, or an error inside a stream).
    Protocol,
    /// An HTTP status of 500 and up (or 429).
    Http(u16),
}

impl FailureReason {
    /// From the proxy's failure kind (`report::failure_kind`, `status_4xx`, `stream_error`…)
    /// and the client's status: a provider that answered 4xx (but 429) answered.
    pub fn of(kind: Option<&str>, status: u16) -> Option<FailureReason> {
        match kind {
            Some("connect") => Some(FailureReason::Connect),
            Some("timeout") => Some(FailureReason::Timeout),
            Some("tls") => Some(FailureReason::Tls),
            Some("reset") => Some(FailureReason::Reset),
            None | Some("status_4xx" | "status_5xx") if status >= 500 || status == 429 => {
                Some(FailureReason::Http(status))
            }
            None | Some("status_4xx" | "status_5xx") => None,
            Some(_) => Some(FailureReason::Protocol),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub at: SystemTime,
    /// When the current run of failures (or successes) began.
    pub since: SystemTime,
    pub reason: Option<FailureReason>,
}

#[derive(Debug, Default)]
pub struct LastOutcome(Mutex<Option<Outcome>>);

impl LastOutcome {
    /// Records an answer (`None`) or a failure; one lock per finished request.
    pub fn record(&self, failure: Option<FailureReason>, now: SystemTime) {
        let Ok(mut last) = self.0.lock() else {
            return;
        };
        let ok = failure.is_none();
        let since = match *last {
            Some(prev) if prev.ok == ok => prev.since,
            _ => now,
        };
        *last = Some(Outcome {
            ok,
            at: now,
            since,
            reason: failure,
        });
    }

    pub fn get(&self) -> Option<Outcome> {
        self.0.lock().ok().and_then(|l| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_run_of_failures_keeps_its_start_and_an_answer_ends_it() {
        let cell = LastOutcome::default();
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert!(cell.get().is_none());
        cell.record(Some(FailureReason::Connect), t(10));
        cell.record(Some(FailureReason::Http(503)), t(20));
        let o = cell.get().unwrap();
        assert!(!o.ok && o.since == t(10) && o.at == t(20));
        assert_eq!(o.reason, Some(FailureReason::Http(503)));
        cell.record(None, t(30));
        let o = cell.get().unwrap();
        assert!(o.ok && o.since == t(30) && o.reason.is_none());
    }

    #[test]
    fn reasons_come_from_the_failure_kind_or_the_status() {
        assert_eq!(
            FailureReason::of(Some("connect"), 502),
            Some(FailureReason::Connect)
        );
        assert_eq!(FailureReason::of(None, 503), Some(FailureReason::Http(503)));
        assert_eq!(FailureReason::of(None, 429), Some(FailureReason::Http(429)));
        assert_eq!(FailureReason::of(None, 400), None);
        assert_eq!(FailureReason::of(Some("status_4xx"), 401), None);
        assert_eq!(
            FailureReason::of(Some("status_5xx"), 502),
            Some(FailureReason::Http(502))
        );
        assert_eq!(
            FailureReason::of(Some("stream_error"), 200),
            Some(FailureReason::Protocol)
        );
    }
}
