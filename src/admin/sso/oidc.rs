//! One OpenID Connect provider, by discovery (`{issuer}/.well-known/openid-configuration`,
//! then its JWKS, fetched again for every sign-in so rotated keys are picked up): the
//! authorization URL (code flow, PKCE S256, `state`, `nonce`) and, on the way back, the code
//! exchanged for tokens and the ID token checked by `openidconnect` — its signature against
//! the provider's keys, issuer, audience, expiry and nonce. Claims read: `sub`, `email` with
//! `email_verified`, `preferred_username`, and `groups` (a custom claim, for `admin_groups`).

use super::{SsoError, Started, Verified};
use crate::config::sso::OidcProvider;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

/// The one claim beyond the standard ones that FlexiProxy reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct GroupsClaim {
    #[serde(default, deserialize_with = "string_or_list")]
    groups: Vec<String>,
}

impl AdditionalClaims for GroupsClaim {}

/// `groups` as a list of names, a single name, or anything else (read as none).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

type TokenFields = IdTokenFields<
    GroupsClaim,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type OidcClient = Client<
    GroupsClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<TokenFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The client for `provider`, from its discovery document and keys as they are now.
async fn client(
    provider: &OidcProvider,
    redirect_uri: &str,
    http: &reqwest::Client,
) -> Result<OidcClient, SsoError> {
    let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|_| SsoError::ProviderDown)?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.name, error = %e, "single sign-on: discovery failed");
            SsoError::ProviderDown
        })?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| SsoError::State)?;
    Ok(OidcClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        provider
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().to_owned())),
    )
    .set_redirect_uri(redirect))
}

/// Where to send the browser, with the flow's secrets to keep until it comes back.
pub(super) async fn start(
    provider: &OidcProvider,
    redirect_uri: &str,
    http: &reqwest::Client,
) -> Result<Started, SsoError> {
    let client = client(provider, redirect_uri, http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Started {
        location: url.to_string(),
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
        nonce: Some(nonce.secret().clone()),
    })
}

/// The code exchanged and the ID token checked: who signed in.
pub(super) async fn finish(
    provider: &OidcProvider,
    redirect_uri: &str,
    code: &str,
    verifier: String,
    nonce: &str,
    http: &reqwest::Client,
) -> Result<Verified, SsoError> {
    let client = client(provider, redirect_uri, http).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| SsoError::ProviderDown)?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(http)
        .await
        .map_err(|e| {
            // The provider's refusal (a replayed or unknown code), never the code itself.
            tracing::warn!(provider = %provider.name, error = %e, "single sign-on: code refused");
            match e {
                openidconnect::RequestTokenError::ServerResponse(_) => SsoError::CodeRefused,
                _ => SsoError::ProviderDown,
            }
        })?;
    let id_token = response.id_token().ok_or(SsoError::TokenInvalid)?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(|e| {
            tracing::warn!(provider = %provider.name, error = %e, "single sign-on: ID token refused");
            SsoError::TokenInvalid
        })?;
    let email = claims
        .email()
        .filter(|_| claims.email_verified() == Some(true))
        .map(|e| e.as_str().to_owned());
    if !provider.allowed_domains.is_empty() {
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        if !domain.is_some_and(|d| provider.allowed_domains.contains(&d)) {
            return Err(SsoError::DomainNotAllowed);
        }
    }
    let groups = &claims.additional_claims().groups;
    Ok(Verified {
        provider: format!("oidc:{}", provider.name),
        subject: claims.subject().as_str().to_owned(),
        name_hint: claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .or_else(|| {
                email
                    .as_deref()
                    .and_then(|e| e.split('@').next())
                    .map(str::to_owned)
            })
            .unwrap_or_default(),
        email,
        admin: (!provider.admin_groups.is_empty())
            .then(|| provider.admin_groups.iter().any(|g| groups.contains(g))),
        restricted: !provider.allowed_domains.is_empty(),
    })
}
