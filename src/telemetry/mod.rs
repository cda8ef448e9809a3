//! What the proxy tells operators: Prometheus [`metrics`], the JSON [`access_log`], and the
//! optional [`usage`] statistics (off by default; SQLite, or PostgreSQL in [`usage_pg`]), and
//! the [`inspector`]'s kept exchanges ([`capture`]), and the [`audit`] log of who changed what.

pub mod access_log;
pub mod audit;
mod audit_pg;
pub mod capture;
pub mod inspector;
pub mod metrics;
pub mod outcome;
pub mod usage;
pub mod usage_pg;
pub mod usage_view;

use std::sync::Arc;

/// The telemetry one server shares across requests.
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    pub access_log: access_log::AccessLog,
    /// Present only when usage statistics are enabled.
    pub usage: Option<usage::UsageSink>,
    /// What each request cost (the access log and the usage statistics say).
    pub prices: Arc<crate::config::prices::PriceTable>,
    /// The exchanges adapters with `inspect:` keep.
    pub inspector: Arc<inspector::Inspector>,
}
