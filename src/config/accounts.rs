//! `accounts:` in the server config: who may open an account on the panel without an admin at
//! a shell (issue #27). `registration` is `closed` (the default: only `flexiproxy user add`),
//! `invite` (sign-up needs a code from `flexiproxy invite create` or the users page) or
//! `open`; `approval: true` keeps new accounts pending until an admin approves them;
//! `default_max_adapters` is a new account's cap; `default_quota` the per-user quota of every
//! user without a `quota:` of their own (enforced by `proxy::user_quota`). `oidc` (OpenID
//! Connect providers, by discovery) and `github` are the single sign-on providers the login
//! page offers (`admin::sso`); their client secrets may be `${ENV}` references.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Accounts are made by an admin only.
    #[default]
    Closed,
    /// Sign-up with an invitation code.
    Invite,
    /// Anyone who reaches the panel may sign up.
    Open,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Closed => "closed",
            Registration::Invite => "invite",
            Registration::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_adapters: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_quota: Option<QuotaFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<OidcFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubFile>,
    /// The panel's address as browsers reach it (`https://panel.example.com`), for the
    /// single sign-on redirect URIs; without it they are made from the request's `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel_url: Option<String>,
}

/// A per-user quota (`accounts.default_quota`, a user's `quota:`): requests per UTC day,
/// tokens and cost (in the server's `currency`) per UTC month; an absent field is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_month: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub admin_groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GithubFile {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
    /// GitHub's web and API base URLs; for tests against a stand-in only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

impl QuotaFile {
    pub fn is_empty(&self) -> bool {
        self.requests_per_day.is_none()
            && self.tokens_per_month.is_none()
            && self.cost_per_month.is_none()
    }

    /// `flexiproxy user set --quota`'s text: `requests_per_day=2000,tokens_per_month=5e7,
    /// cost_per_month=20` (those given; `unlimited` for none), or `default` (`Ok(None)`: back
    /// to `accounts.default_quota`).
    pub fn parse_spec(text: &str) -> Result<Option<QuotaFile>, String> {
        let text = text.trim();
        match text {
            "default" => return Ok(None),
            "unlimited" => return Ok(Some(QuotaFile::default())),
            _ => {}
        }
        let mut q = QuotaFile::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected name=number"))?;
            let number: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("`{part}`: not a number of 0 or more"))?;
            let whole = || (number.fract() == 0.0 && number < 1e18).then_some(number as u64);
            match key.trim() {
                "requests_per_day" => {
                    q.requests_per_day = Some(whole().ok_or("requests_per_day: a whole number")?)
                }
                "tokens_per_month" => {
                    q.tokens_per_month = Some(whole().ok_or("tokens_per_month: a whole number")?)
                }
                "cost_per_month" => q.cost_per_month = Some(number),
                other => {
                    return Err(format!(
                        "`{other}`: one of requests_per_day, tokens_per_month, cost_per_month"
                    ));
                }
            }
        }
        if q.is_empty() {
            return Err("give requests_per_day=…, tokens_per_month=…, cost_per_month=…, `unlimited` or `default`".into());
        }
        q.check()?;
        Ok(Some(q))
    }

    /// The quota as [`QuotaFile::parse_spec`] reads it (`unlimited` when empty).
    pub fn spec(&self) -> String {
        let parts: Vec<String> = [
            self.requests_per_day
                .map(|n| format!("requests_per_day={n}")),
            self.tokens_per_month
                .map(|n| format!("tokens_per_month={n}")),
            self.cost_per_month.map(|n| format!("cost_per_month={n}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "unlimited".into()
        } else {
            parts.join(",")
        }
    }

    /// Why the quota cannot be enforced (a cost that is negative or not a number).
    pub fn check(&self) -> Result<(), String> {
        match self.cost_per_month {
            Some(c) if !c.is_finite() || !(0.0..=1e12).contains(&c) => {
                Err("cost_per_month: a number from 0 to 1000000000000".into())
            }
            _ => Ok(()),
        }
    }
}

/// The validated `accounts:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountsConfig {
    pub registration: Registration,
    pub approval: bool,
    pub default_max_adapters: usize,
    /// The quota of every user without their own `quota:` (none: unlimited).
    pub default_quota: Option<QuotaFile>,
    /// Single sign-on providers, in the order of the login page's buttons.
    pub sso: super::sso::SsoConfig,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            registration: Registration::Closed,
            approval: false,
            default_max_adapters: super::users::DEFAULT_MAX_ADAPTERS,
            default_quota: None,
            sso: Default::default(),
        }
    }
}

impl AccountsFile {
    /// The section as the proxy uses it, or the key at fault (for the file's line) and why.
    pub fn validate(&self) -> Result<AccountsConfig, (&'static str, String)> {
        if let Some(q) = &self.default_quota {
            q.check()
                .map_err(|m| ("default_quota:", format!("accounts.default_quota.{m}")))?;
        }
        let sso = super::sso::SsoConfig::from_files(
            &self.oidc,
            self.github.as_ref(),
            self.panel_url.as_deref(),
            &|var| std::env::var(var).ok(),
        )?;
        let default_max_adapters = self
            .default_max_adapters
            .unwrap_or(super::users::DEFAULT_MAX_ADAPTERS);
        if default_max_adapters > 10_000 {
            return Err((
                "default_max_adapters:",
                "accounts.default_max_adapters: at most 10000".into(),
            ));
        }
        Ok(AccountsConfig {
            registration: self.registration.unwrap_or_default(),
            approval: self.approval.unwrap_or(false),
            default_max_adapters,
            default_quota: self.default_quota.filter(|q| !q.is_empty()),
            sso,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::server::ServerConfig;
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<AccountsConfig, String> {
        ServerConfig::parse(Path::new("f.yaml"), text)
            .map(|c| c.accounts)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_closed() {
        assert_eq!(parse("").unwrap(), AccountsConfig::default());
        assert_eq!(
            parse("accounts: {}\n").unwrap().registration,
            Registration::Closed
        );
    }

    #[test]
    fn reads_the_issue_s_names() {
        let c = parse(
            "accounts:\n  registration: invite\n  approval: true\n  default_max_adapters: 2\n",
        )
        .unwrap();
        assert_eq!(
            c,
            AccountsConfig {
                registration: Registration::Invite,
                approval: true,
                default_max_adapters: 2,
                default_quota: None,
                sso: Default::default(),
            }
        );
        assert_eq!(
            parse("accounts:\n  registration: open\n")
                .unwrap()
                .registration,
            Registration::Open
        );
    }

    #[test]
    fn quota_specs_parse_or_say_why() {
        let q = QuotaFile::parse_spec(
            "requests_per_day=2000, tokens_per_month=5e7,cost_per_month=20.5",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (q.requests_per_day, q.tokens_per_month, q.cost_per_month),
            (Some(2000), Some(50_000_000), Some(20.5))
        );
        assert_eq!(QuotaFile::parse_spec(&q.spec()).unwrap(), Some(q));
        assert_eq!(QuotaFile::parse_spec("default").unwrap(), None);
        assert_eq!(
            QuotaFile::parse_spec("unlimited").unwrap(),
            Some(QuotaFile::default())
        );
        for bad in [
            "",
            "requests_per_day",
            "requests_per_day=1.5",
            "cost_per_month=-1",
            "x=1",
            "tokens_per_month=NaN",
        ] {
            assert!(QuotaFile::parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let e = parse("listen: 127.0.0.1:1\naccounts:\n  registration: public\n").unwrap_err();
        assert!(e.starts_with("f.yaml:3:"), "{e}");
        let e = parse("accounts:\n  aproval: true\n").unwrap_err();
        assert!(e.starts_with("f.yaml:2:") && e.contains("aproval"), "{e}");
        let e = parse("accounts:\n  registration: open\n  default_quota: { cost_per_month: -1 }\n")
            .unwrap_err();
        assert!(
            e.starts_with("f.yaml:3:") && e.contains("cost_per_month"),
            "{e}"
        );
        let q = parse(
            "accounts:\n  default_quota: { requests_per_day: 2000, tokens_per_month: 50000000, cost_per_month: 20 }\n",
        )
        .unwrap()
        .default_quota
        .unwrap();
        assert_eq!(
            (q.requests_per_day, q.tokens_per_month, q.cost_per_month),
            (Some(2000), Some(50_000_000), Some(20.0))
        );
    }
}
