//! The provider check as the management API and the panel run it
//! (`POST /admin/api/adapters/{name}/probe`): for the adapter's owner or an admin, one check
//! of an adapter at a time, a few per panel user in a window, a non-admin owner's source
//! held to the egress policy; with `apply`, the suggested options are written into the file
//! through the locked editor and the proxy has loaded them before the answer.

use super::{Actor, ApiError, Manager};
use crate::admin::probe::{self, CheckReport, guard};
use crate::config::adapter::{ImagesFile, MaxTokensFieldFile, ReasoningFile, SystemMessagesFile};
use crate::config::edit::{self, options::OptionsAt};
use crate::telemetry::audit::{self, Event, Kind};
use serde::{Deserialize, Serialize};

/// The body of `POST /admin/api/adapters/{name}/probe`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Write the suggested options into the adapter file.
    #[serde(default)]
    pub apply: bool,
    /// Check a route's source (its index in `routes:`) instead of the default one.
    #[serde(default)]
    pub route: Option<usize>,
    /// With `apply`: write these (a suggestion shown before, as the panel's Apply does)
    /// instead of checking again.
    #[serde(default)]
    pub options: Option<SuggestedOptions>,
}

/// The options a check may suggest: the only ones it writes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestedOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_usage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensFieldFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_messages: Option<SystemMessagesFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_reasoning: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesFile>,
}

/// What a check answers: the report, the file change it implies (or made), and the file's
/// version (for `If-Match` on a later Apply).
#[derive(Debug, Clone, Serialize)]
pub struct CheckResponse {
    #[serde(flatten)]
    pub report: CheckReport,
    /// The changed lines of the adapter file (`-` before, `+` after); empty when none.
    pub diff: String,
    pub applied: bool,
    pub version: String,
}

impl Manager {
    /// Runs the provider check of `name` (or writes `options` it suggested before).
    pub async fn check_provider(
        &self,
        actor: &Actor,
        name: &str,
        request: CheckRequest,
        if_match: Option<&str>,
    ) -> Result<CheckResponse, ApiError> {
        let entry = self.visible_entry(actor, name)?;
        let snapshot = self.live.load();
        let adapter = snapshot
            .adapter(name)
            .ok_or_else(|| ApiError::new(404, format!("adapter `{name}` is not loaded")))?;
        let (source, at) = match request.route {
            None => (&adapter.source, OptionsAt::Source),
            Some(i) => match adapter.routes.get(i) {
                Some(route) => (&route.source, OptionsAt::Route(i)),
                None => return Err(ApiError::bad("route", "no such route").coded("stale")),
            },
        };
        let scope = self.server.adapters_dir.display().to_string();
        let given = request.options.filter(|_| request.apply);
        let (report, suggested) = match given {
            Some(options) => {
                let map = serde_json::to_value(options).unwrap_or_default();
                let map = map.as_object().cloned().unwrap_or_default();
                (CheckReport::default(), map)
            }
            None => {
                let Some(_running) = guard::start(&format!("{scope}\0{name}")) else {
                    return Err(ApiError::new(
                        409,
                        format!("a check of `{name}` is running; try again when it has ended"),
                    )
                    .coded("check_running"));
                };
                if actor.is_user
                    && let Err(wait) = guard::allow_user(&format!("{scope}\0{}", actor.name))
                {
                    return Err(ApiError::new(
                        429,
                        format!(
                            "at most {} checks in {} minutes; the next in {} s",
                            guard::USER_CHECKS,
                            guard::USER_WINDOW.as_secs() / 60,
                            wait.as_secs().max(1)
                        ),
                    )
                    .coded("check_rate"));
                }
                let policy = self
                    .restricted(adapter.owner.as_deref())
                    .then_some(&self.server.egress);
                let report = probe::run_check(source, policy).await;
                tracing::info!(
                    actor = %actor.name, adapter = name, requests = report.requests_sent,
                    protocol = source.protocol.name(), "provider check"
                );
                let suggested = report.suggested_options.clone();
                (report, suggested)
            }
        };
        if suggested.is_empty() {
            return Ok(CheckResponse {
                report,
                diff: String::new(),
                applied: false,
                version: entry.version,
            });
        }
        if !request.apply {
            let server = self.server.clone();
            let owned = name.to_owned();
            let edit = tokio::task::spawn_blocking(move || {
                edit::options::preview_options(&server, &owned, at, &suggested)
            })
            .await
            .map_err(|e| ApiError::new(500, e.to_string()))??;
            return Ok(CheckResponse {
                report,
                diff: edit.diff(),
                applied: false,
                version: entry.version,
            });
        }
        let server = self.server.clone();
        let owned = name.to_owned();
        let version = if_match.map_or(entry.version, str::to_owned);
        let before = snapshot.generation;
        let detail = edit::options::audit_detail(at, &suggested);
        let edit = tokio::task::spawn_blocking(move || {
            edit::options::set_options(&server, &owned, at, &suggested, Some(&version))
        })
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))??;
        self.applied(|s| s.generation > before).await;
        tracing::info!(actor = %actor.name, adapter = name, "adapter options applied from a provider check");
        audit::record(Event::new(Kind::AdapterChange, &actor.name, name).detail(detail));
        Ok(CheckResponse {
            report,
            diff: edit.diff(),
            applied: true,
            version: edit::version_of(&edit.after),
        })
    }
}
