//! The single sign-on providers of `accounts:` (issue #27), validated: each OpenID Connect
//! provider's name (its button and its part of the callback path), issuer, client and the
//! rules for who may sign in (`allowed_domains`, `admin_groups`); GitHub's client and
//! `allowed_orgs`. Client secrets are `${ENV}` references or literals, kept in a [`Secret`]
//! that no `Debug` prints.

use super::accounts::{GithubFile, OidcFile};
use super::keys::Secret;

/// GitHub's own addresses (overridden in tests only, by `web_url` and `api_url`).
pub const GITHUB_WEB: &str = "https://github.com";
pub const GITHUB_API: &str = "https://api.github.com";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SsoConfig {
    pub oidc: Vec<OidcProvider>,
    pub github: Option<GithubProvider>,
    /// The panel's base URL for redirect URIs (none: from the request's `Host`).
    pub panel_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OidcProvider {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Lower-case domains the verified email must be in (empty: any).
    pub allowed_domains: Vec<String>,
    pub admin_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GithubProvider {
    pub client_id: String,
    pub client_secret: Secret,
    /// Lower-case organisation logins, one of which the user must be an active member of.
    pub allowed_orgs: Vec<String>,
    pub web_url: String,
    pub api_url: String,
}

impl SsoConfig {
    pub fn is_empty(&self) -> bool {
        self.oidc.is_empty() && self.github.is_none()
    }

    /// The provider id used in paths and identity links: `oidc:<name>` or `github`.
    pub fn provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .oidc
            .iter()
            .map(|p| format!("oidc:{}", p.name))
            .collect();
        if self.github.is_some() {
            ids.push("github".into());
        }
        ids
    }

    /// Validates the section's `oidc`, `github` and `panel_url`: the key at fault and why.
    pub fn from_files(
        oidc: &[OidcFile],
        github: Option<&GithubFile>,
        panel_url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SsoConfig, (&'static str, String)> {
        let mut providers = Vec::new();
        for (i, p) in oidc.iter().enumerate() {
            let at = |m: String| ("oidc:", format!("accounts.oidc[{i}].{m}"));
            if !valid_name(&p.name) {
                return Err(at(format!(
                    "name: `{}` must be 1 to 32 letters, digits, `-` or `_`",
                    p.name
                )));
            }
            if p.name == "github" {
                return Err(at(
                    "name: `github` is GitHub's button; choose another".into()
                ));
            }
            if providers.iter().any(|q: &OidcProvider| q.name == p.name) {
                return Err(at(format!("name: `{}` is used twice", p.name)));
            }
            let issuer = p.issuer.trim().trim_end_matches('/').to_owned();
            if !http_url(&issuer) {
                return Err(at(
                    "issuer: an http(s) URL, e.g. https://id.example.com".into()
                ));
            }
            if p.client_id.trim().is_empty() {
                return Err(at("client_id: required".into()));
            }
            let client_secret = match &p.client_secret {
                Some(s) => Some(secret(s, env).map_err(|m| at(format!("client_secret: {m}")))?),
                None => None,
            };
            providers.push(OidcProvider {
                name: p.name.clone(),
                issuer,
                client_id: p.client_id.trim().to_owned(),
                client_secret,
                allowed_domains: lower(&p.allowed_domains),
                admin_groups: p.admin_groups.clone(),
            });
        }
        let github = match github {
            None => None,
            Some(g) => {
                let at = |m: String| ("github:", format!("accounts.github.{m}"));
                if g.client_id.trim().is_empty() {
                    return Err(at("client_id: required".into()));
                }
                if let Some(bad) = g.allowed_orgs.iter().find(|o| !valid_name(o.trim())) {
                    return Err(at(format!(
                        "allowed_orgs: `{bad}` is not an organisation login"
                    )));
                }
                let client_secret = secret(
                    g.client_secret
                        .as_deref()
                        .ok_or_else(|| at("client_secret: required".into()))?,
                    env,
                )
                .map_err(|m| at(format!("client_secret: {m}")))?;
                let base = |v: &Option<String>, default: &str, key: &str| {
                    let url = v.as_deref().unwrap_or(default).trim_end_matches('/');
                    if http_url(url) {
                        Ok(url.to_owned())
                    } else {
                        Err(at(format!("{key}: an http(s) URL")))
                    }
                };
                Some(GithubProvider {
                    client_id: g.client_id.trim().to_owned(),
                    client_secret,
                    allowed_orgs: lower(&g.allowed_orgs),
                    web_url: base(&g.web_url, GITHUB_WEB, "web_url")?,
                    api_url: base(&g.api_url, GITHUB_API, "api_url")?,
                })
            }
        };
        let panel_url = match panel_url.map(|u| u.trim().trim_end_matches('/')) {
            Some(u) if !http_url(u) => {
                return Err((
                    "panel_url:",
                    "accounts.panel_url: an http(s) URL, e.g. https://panel.example.com".into(),
                ));
            }
            other => other.map(str::to_owned),
        };
        Ok(SsoConfig {
            oidc: providers,
            github,
            panel_url,
        })
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace)
}

fn lower(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

fn secret(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let value = super::adapter::expand_env(value, env).map_err(|e| e.to_string())?;
    if value.is_empty() {
        return Err("empty".into());
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use crate::config::server::ServerConfig;
    use std::path::Path;

    fn parse(text: &str) -> Result<super::SsoConfig, String> {
        ServerConfig::parse(Path::new("f.yaml"), text)
            .map(|c| c.accounts.sso)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_issue_s_example() {
        // SAFETY: this test's own variable name; no other test reads or writes it.
        unsafe { std::env::set_var("FLEXIPROXY_TEST_OIDC_SECRET", "s3cret-canary") };
        let c = parse(
            "accounts:\n  registration: invite\n  oidc:\n    - name: company\n      issuer: https://id.example.com/\n      client_id: flexiproxy\n      client_secret: ${FLEXIPROXY_TEST_OIDC_SECRET}\n      allowed_domains: [Example.com]\n      admin_groups: [llm-admins]\n  github: { client_id: gh, client_secret: lit, allowed_orgs: [My-Org] }\n",
        )
        .unwrap();
        let p = &c.oidc[0];
        assert_eq!(p.issuer, "https://id.example.com");
        assert_eq!(p.client_secret.as_ref().unwrap().expose(), "s3cret-canary");
        assert_eq!(p.allowed_domains, ["example.com"]);
        let g = c.github.as_ref().unwrap();
        assert_eq!(
            (g.allowed_orgs[0].as_str(), g.api_url.as_str()),
            ("my-org", super::GITHUB_API)
        );
        assert_eq!(c.provider_ids(), ["oidc:company", "github"]);
        assert!(
            !format!("{c:?}").contains("s3cret-canary"),
            "Debug hides secrets"
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, says) in [
            (
                "  oidc:\n    - { name: 'a b', issuer: https://x, client_id: c }\n",
                "name",
            ),
            (
                "  oidc:\n    - { name: a, issuer: ftp://x, client_id: c }\n",
                "issuer",
            ),
            (
                "  oidc:\n    - { name: a, issuer: https://x, client_id: c, client_secret: '${FLEXIPROXY_NO_SUCH_VAR}' }\n",
                "FLEXIPROXY_NO_SUCH_VAR",
            ),
            (
                "  oidc:\n    - { name: a, issuer: https://x, client_id: c }\n    - { name: a, issuer: https://y, client_id: c }\n",
                "twice",
            ),
            ("  github: { client_id: c }\n", "client_secret"),
            ("  panel_url: panel.example.com\n", "panel_url"),
        ] {
            let e = parse(&format!("accounts:\n{text}")).unwrap_err();
            assert!(e.starts_with("f.yaml:") && e.contains(says), "{text}: {e}");
        }
    }
}
