//! `accounts:` in the server config: who may open an account on the panel without an admin at
//! a shell (issue #27). `registration` is `closed` (the default: only `flexiproxy user add`),
//! `invite` (sign-up needs a code from `flexiproxy invite create` or the users page) or
//! `open`; `approval: true` keeps new accounts pending until an admin approves them;
//! `default_max_adapters` is a new account's cap. `default_quota`, `oidc` and `github` are
//! read so that their spelling is checked, but quotas and single sign-on are not built yet:
//! a config that sets them is refused at start rather than silently not enforced.

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
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
}

/// The validated `accounts:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsConfig {
    pub registration: Registration,
    pub approval: bool,
    pub default_max_adapters: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            registration: Registration::Closed,
            approval: false,
            default_max_adapters: super::users::DEFAULT_MAX_ADAPTERS,
        }
    }
}

impl AccountsFile {
    /// The section as the proxy uses it, or the key at fault (for the file's line) and why.
    pub fn validate(&self) -> Result<AccountsConfig, (&'static str, String)> {
        if self.default_quota.is_some() {
            return Err((
                "default_quota:",
                "accounts.default_quota: per-user quotas are not enforced yet; remove it \
                 (per-adapter `limits:` work today)"
                    .into(),
            ));
        }
        if !self.oidc.is_empty() {
            return Err((
                "oidc:",
                "accounts.oidc: single sign-on is not available yet; remove it".into(),
            ));
        }
        if self.github.is_some() {
            return Err((
                "github:",
                "accounts.github: GitHub sign-in is not available yet; remove it".into(),
            ));
        }
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
                default_max_adapters: 2
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
    fn mistakes_name_the_file_and_line() {
        let e = parse("listen: 127.0.0.1:1\naccounts:\n  registration: public\n").unwrap_err();
        assert!(e.starts_with("f.yaml:3:"), "{e}");
        let e = parse("accounts:\n  aproval: true\n").unwrap_err();
        assert!(e.starts_with("f.yaml:2:") && e.contains("aproval"), "{e}");
        let e =
            parse("accounts:\n  registration: open\n  default_quota: { requests_per_day: 5 }\n")
                .unwrap_err();
        assert!(
            e.starts_with("f.yaml:3:") && e.contains("not enforced"),
            "{e}"
        );
        let e = parse(
            "accounts:\n  oidc:\n    - { name: c, issuer: https://id.example.com, client_id: x }\n",
        )
        .unwrap_err();
        assert!(e.starts_with("f.yaml:2:") && e.contains("sign-on"), "{e}");
    }
}
