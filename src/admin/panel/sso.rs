//! Single sign-on pages (issue #27): `POST /sso/<provider>` (a login page button) sends the
//! browser on to the provider; `GET /sso/<provider>/callback` is where it comes back. Success
//! sets the session cookie on a page that moves on to `/` by itself — the session cookie
//! is `SameSite=Strict`, so the browser sends it only on a navigation this site starts, not
//! at the end of redirects that began at the provider. Every refusal ends on the login page
//! with the reason in the user's language (`?sso_error=<code>`).

use super::{Ctx, redirect, vars};
use crate::admin::auth;
use crate::admin::sso::{FLOW_COOKIE, SsoError, flow_cookie};
use http::Response;
use minijinja::Value;

fn refused(cx: &Ctx, e: SsoError) -> Response<Vec<u8>> {
    let clear = flow_cookie(None, cx.req.secure_cookies);
    redirect(&format!("/login?sso_error={}", e.code()), &[clear])
}

pub(super) async fn start(cx: &Ctx<'_>, provider: &str) -> Response<Vec<u8>> {
    if cx.req.session.is_some() {
        return redirect("/", &[]);
    }
    let sso = &cx.app.sso;
    let redirect_uri = sso.redirect_uri(provider, cx.req.header("host"), cx.req.secure_cookies);
    match sso.start(provider, &redirect_uri).await {
        Ok((location, browser)) => moving_on(
            cx,
            cx.t("sso_to_provider"),
            &location,
            &[flow_cookie(Some(&browser), cx.req.secure_cookies)],
        ),
        Err(e) => refused(cx, e),
    }
}

/// A page that goes on to `to` by itself, setting `cookies`. Not a redirect: after the
/// button's POST, a redirect to the provider would be held to the panel's CSP
/// `form-action 'self'`; at the end of the sign-in, see the module's comment.
fn moving_on(cx: &Ctx, title: &str, to: &str, cookies: &[String]) -> Response<Vec<u8>> {
    let page = vars([
        ("title", Value::from(title)),
        ("text", Value::from("")),
        ("refresh_to", Value::from(to)),
    ]);
    let mut response = cx.render(200, "message.html", "", page);
    for c in cookies {
        if let Ok(v) = http::HeaderValue::from_str(c) {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    response
}

pub(super) async fn callback(cx: &Ctx<'_>, provider: &str) -> Response<Vec<u8>> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(&cx.req.query).unwrap_or_default();
    let browser = auth::cookie_value(&cx.req.headers, FLOW_COOKIE);
    let who = match cx
        .app
        .sso
        .finish(provider, &query, browser.as_deref())
        .await
    {
        Ok(who) => who,
        Err(e) => {
            // The path's provider only when it is a configured one (it is the caller's text).
            let known = cx.app.sso.provider_id(provider);
            let known = known.as_deref().unwrap_or("unknown");
            crate::admin::sso::link::audit_refusal(known, "(unknown)", e, &cx.req.client_ip);
            return refused(cx, e);
        }
    };
    let session = match cx.app.sso_sign_in(who, &cx.req.client_ip).await {
        Ok(cookie) => cookie,
        Err(e) => return refused(cx, e),
    };
    let cookies = [session, flow_cookie(None, cx.req.secure_cookies)];
    moving_on(cx, cx.t("sso_signed_in"), "/", &cookies)
}

/// The login page's words for `?sso_error=<code>` (nothing for an unknown code).
pub(super) fn error_text(cx: &Ctx, code: &str) -> Option<&'static str> {
    SsoError::from_code(code).map(|e| cx.t(&format!("err_{}", e.code())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::i18n::Lang;

    #[test]
    fn every_refusal_has_both_languages() {
        for e in SsoError::ALL {
            let key = format!("err_{}", e.code());
            for lang in [Lang::En, Lang::Zh] {
                assert_ne!(lang.t(&key), "?", "{key} in {lang:?}");
            }
            assert!(
                Lang::Zh
                    .t(&key)
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{key} in Chinese"
            );
            assert_eq!(SsoError::from_code(e.code()), Some(*e));
        }
    }
}
