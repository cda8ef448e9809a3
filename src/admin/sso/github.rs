//! GitHub sign-in (OAuth 2, not OpenID Connect): the authorize URL (with PKCE and `state`),
//! the code exchanged for an access token by the `oauth2` crate, then the REST API: `/user`
//! (the numeric id is the subject, the login the name hint), `/user/emails` (the verified
//! primary email) and `/user/memberships/orgs/{org}` (an active membership of one of
//! `allowed_orgs`). `web_url` and `api_url` point elsewhere only in tests.

use super::{SsoError, Started, Verified};
use crate::config::sso::GithubProvider;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

type GithubClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(github: &GithubProvider, redirect_uri: &str) -> Result<GithubClient, SsoError> {
    let bad = |_| SsoError::ProviderDown;
    Ok(BasicClient::new(ClientId::new(github.client_id.clone()))
        .set_client_secret(ClientSecret::new(github.client_secret.expose().to_owned()))
        .set_auth_uri(
            AuthUrl::new(format!("{}/login/oauth/authorize", github.web_url)).map_err(bad)?,
        )
        .set_token_uri(
            TokenUrl::new(format!("{}/login/oauth/access_token", github.web_url)).map_err(bad)?,
        )
        // GitHub reads the client's credentials from the form.
        .set_auth_type(oauth2::AuthType::RequestBody)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| SsoError::State)?))
}

pub(super) fn start(github: &GithubProvider, redirect_uri: &str) -> Result<Started, SsoError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(github, redirect_uri)?;
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".into()))
        .add_scope(Scope::new("user:email".into()))
        .set_pkce_challenge(challenge);
    if !github.allowed_orgs.is_empty() {
        request = request.add_scope(Scope::new("read:org".into()));
    }
    let (url, state) = request.url();
    Ok(Started {
        location: url.to_string(),
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
        nonce: None,
    })
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

#[derive(Deserialize)]
struct Membership {
    state: String,
}

/// GET `{api_url}{path}` with the user's token: `Ok(None)` on 404 (not a member).
async fn api<T: serde::de::DeserializeOwned>(
    github: &GithubProvider,
    path: &str,
    token: &str,
    http: &reqwest::Client,
) -> Result<Option<T>, SsoError> {
    let response = http
        .get(format!("{}{path}", github.api_url))
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "FlexiProxy")
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e.without_url(), "GitHub sign-in: the API did not answer");
            SsoError::ProviderDown
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
        return Ok(None);
    }
    if !status.is_success() {
        tracing::warn!(%status, path, "GitHub sign-in: the API refused");
        return Err(SsoError::ProviderDown);
    }
    response
        .json()
        .await
        .map(Some)
        .map_err(|_| SsoError::ProviderDown)
}

pub(super) async fn finish(
    github: &GithubProvider,
    redirect_uri: &str,
    code: &str,
    verifier: String,
    http: &reqwest::Client,
) -> Result<Verified, SsoError> {
    let token = client(github, redirect_uri)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "GitHub sign-in: code refused");
            match e {
                oauth2::RequestTokenError::Request(_) => SsoError::ProviderDown,
                _ => SsoError::CodeRefused,
            }
        })?;
    let token = token.access_token().secret();
    let user: GithubUser = api(github, "/user", token, http)
        .await?
        .ok_or(SsoError::ProviderDown)?;
    let emails: Vec<GithubEmail> = api(github, "/user/emails", token, http)
        .await?
        .unwrap_or_default();
    let email = emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email);
    if !github.allowed_orgs.is_empty() {
        let mut member = false;
        for org in &github.allowed_orgs {
            // Names are letters, digits and `-` (checked at config load): nothing to escape.
            let path = format!("/user/memberships/orgs/{org}");
            let m: Option<Membership> = api(github, &path, token, http).await?;
            if m.is_some_and(|m| m.state == "active") {
                member = true;
                break;
            }
        }
        if !member {
            return Err(SsoError::OrgNotAllowed);
        }
    }
    Ok(Verified {
        provider: "github".into(),
        subject: user.id.to_string(),
        name_hint: user.login,
        email,
        admin: None,
        restricted: !github.allowed_orgs.is_empty(),
    })
}
