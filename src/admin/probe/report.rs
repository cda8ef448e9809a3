//! What the provider check found: each check with its outcome and evidence, the adapter
//! options it implies (only the ones that would change what the adapter does now), and how
//! many requests were sent. `--json` and the API print it as
//! `{"checks": [{"name", "outcome", "detail"}], "suggested_options": {…}, "requests_sent": N}`.

use super::wire::{Answer, Wire};
use crate::config::adapter::{Source, SourceProtocol};
use crate::config::egress::EgressPolicy;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Works as the adapter is set up.
    Ok,
    /// Works with the option the detail names.
    NeedsOption,
    /// Does not work, and no option makes it work.
    Failed,
    /// Not asked: it does not apply to this source, or an earlier answer made it moot.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    /// What was seen (status, timing, the provider's words, masked) and the option implied.
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub checks: Vec<Check>,
    /// Adapter options (as written in `options:`) the answers call for.
    pub suggested_options: Map<String, Value>,
    pub requests_sent: usize,
}

impl CheckReport {
    pub fn push(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome,
            detail: detail.into(),
        });
    }

    /// A check that needs `option: value`; the detail names it.
    pub fn needs(&mut self, name: &'static str, option: &str, value: Value, why: String) {
        let detail = format!("{why} → {option}: {}", plain(&value));
        self.suggested_options.insert(option.to_owned(), value);
        self.push(name, Outcome::NeedsOption, detail);
    }

    /// A check whose request failed for a reason no option fixes.
    pub fn failed(&mut self, name: &'static str, answer: &Answer) {
        self.push(name, Outcome::Failed, answer.evidence());
    }

    pub fn skip(&mut self, names: &[&'static str], why: &str) {
        for name in names {
            self.push(name, Outcome::Skipped, why);
        }
    }

    pub fn outcome_of(&self, name: &str) -> Option<Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.outcome)
    }

    /// True when every check that ran passed or is fixed by a suggested option.
    pub fn usable(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }

    /// The report as lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.outcome {
                Outcome::Ok => "ok    ",
                Outcome::NeedsOption => "option",
                Outcome::Failed => "FAILED",
                Outcome::Skipped => "skip  ",
            };
            out.push_str(&format!("{mark}  {:<22} {}\n", c.name, c.detail));
        }
        out.push_str(&format!("{} request(s) sent\n", self.requests_sent));
        if self.suggested_options.is_empty() {
            out.push_str("No option to change.\n");
        } else {
            out.push_str("Suggested options:\n");
            for (k, v) in &self.suggested_options {
                out.push_str(&format!("  {k}: {}\n", plain(v)));
            }
        }
        out
    }
}

/// A value as written in YAML (`false`, `max_completion_tokens`).
fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// Runs the check against `source` (`policy` set when the source must be a public address).
pub async fn run_check(source: &Source, policy: Option<&EgressPolicy>) -> CheckReport {
    let mut report = CheckReport::default();
    let client = match super::client_for(source, policy).await {
        Ok(c) => c,
        Err(e) => {
            report.push("authentication", Outcome::Failed, e);
            return report;
        }
    };
    let mut wire = Wire::new(source, client);
    match source.protocol {
        SourceProtocol::OpenAi => super::chat::run(&mut wire, &mut report).await,
        _ => super::native::run(&mut wire, &mut report).await,
    }
    report.requests_sent = wire.sent;
    if wire.tokens > 0 {
        report.push(
            "tokens",
            Outcome::Ok,
            format!(
                "{} tokens used in {} request(s), as the provider reported",
                wire.tokens, wire.sent
            ),
        );
    }
    report
}

/// Reads the model list (`GET …/models`): authentication, whether the model is there, and
/// its limits when the list gives them. `false` when the key was refused (stop there).
pub async fn model_list(wire: &mut Wire<'_>, report: &mut CheckReport, path: &str) -> bool {
    let answer = wire.get(path).await;
    let model = wire.source.model.clone();
    if answer.auth_failed() {
        report.failed("authentication", &answer);
        return false;
    }
    if !answer.ok() {
        report.push(
            "model",
            Outcome::Skipped,
            format!("no model list ({})", answer.evidence()),
        );
        return true;
    }
    report.push("authentication", Outcome::Ok, answer.evidence());
    let entries: Vec<&Value> = answer.json["data"]
        .as_array()
        .or_else(|| answer.json["models"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let id = |m: &Value| -> String {
        let id = m["id"]
            .as_str()
            .or_else(|| m["name"].as_str())
            .unwrap_or_default();
        id.strip_prefix("models/").unwrap_or(id).to_owned()
    };
    match entries.iter().find(|m| id(m) == model) {
        Some(entry) => {
            let mut detail = format!("`{model}` is in the provider's list");
            if let Some(limits) = limits(entry) {
                detail.push_str(&format!(" ({limits})"));
            }
            report.push("model", Outcome::Ok, detail);
        }
        None if entries.is_empty() => {
            report.push("model", Outcome::Skipped, "the model list is empty")
        }
        None => {
            let some: Vec<String> = entries
                .iter()
                .take(8)
                .map(|m| format!("`{}`", id(m)))
                .collect();
            report.push(
                "model",
                Outcome::Failed,
                format!(
                    "model `{model}` is not in the provider's model list (retired or misspelled?); it has {} of {}",
                    some.join(", "),
                    entries.len()
                ),
            );
        }
    }
    true
}

/// The context window and output limit a model list entry states, in any field name the
/// known providers use.
fn limits(entry: &Value) -> Option<String> {
    let first = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            k.split('.')
                .try_fold(entry, |v, part| v.get(part))
                .and_then(Value::as_u64)
        })
    };
    let context = first(&[
        "context_length",
        "context_window",
        "max_model_len",
        "max_input_tokens",
        "inputTokenLimit",
    ]);
    let output = first(&[
        "top_provider.max_completion_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens",
        "outputTokenLimit",
    ]);
    let mut parts = Vec::new();
    if let Some(c) = context {
        parts.push(format!("context window {c} tokens"));
    }
    if let Some(o) = output {
        parts.push(format!("output limit {o} tokens"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_read_under_each_providers_names() {
        let openrouter = json!({"id": "m", "context_length": 131072, "top_provider": {"max_completion_tokens": 8192}});
        assert_eq!(
            limits(&openrouter).unwrap(),
            "context window 131072 tokens, output limit 8192 tokens"
        );
        let gemini =
            json!({"name": "models/m", "inputTokenLimit": 1048576, "outputTokenLimit": 65536});
        assert_eq!(
            limits(&gemini).unwrap(),
            "context window 1048576 tokens, output limit 65536 tokens"
        );
        assert_eq!(limits(&json!({"id": "m"})), None);
    }

    #[test]
    fn a_needed_option_is_suggested_and_named_in_the_detail() {
        let mut report = CheckReport::default();
        report.needs(
            "stream_usage",
            "stream_usage",
            json!(false),
            "400: stream_options unknown".into(),
        );
        assert_eq!(report.suggested_options["stream_usage"], json!(false));
        assert_eq!(
            report.checks[0].detail,
            "400: stream_options unknown → stream_usage: false"
        );
        let json = serde_json::to_value(&report).unwrap();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["checks", "requests_sent", "suggested_options"]);
        let check: Vec<&String> = json["checks"][0].as_object().unwrap().keys().collect();
        assert_eq!(check, ["detail", "name", "outcome"]);
    }
}
