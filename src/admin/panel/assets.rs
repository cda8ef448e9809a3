//! The panel's static files (the stylesheet and the small script, embedded) and the
//! language switch that remembers the chosen language in a cookie.

use super::{Ctx, LANG_COOKIE, finish, query_value, redirect};
use crate::admin::i18n::Lang;
use http::Response;

pub(super) const CSS: &str = include_str!("../static/panel.css");
pub(super) const JS: &str = include_str!("../static/panel.js");

pub(super) fn asset(content_type: &str, body: &str) -> Response<Vec<u8>> {
    let b = Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .header("x-content-type-options", "nosniff");
    finish(b, body.as_bytes().to_vec())
}

/// `GET /lang?to=zh&back=/usage`: remembers the language and goes back (same site only).
pub(super) fn switch_lang(cx: &Ctx) -> Response<Vec<u8>> {
    let lang = query_value(&cx.req.query, "to")
        .and_then(|l| Lang::parse(&l))
        .unwrap_or(cx.lang);
    let back = query_value(&cx.req.query, "back")
        .filter(|b| same_site_path(b))
        .unwrap_or_else(|| "/".into());
    let cookie = cookie::Cookie::build((LANG_COOKIE, lang.code()))
        .path("/")
        .same_site(cookie::SameSite::Strict)
        .http_only(true)
        .secure(cx.req.secure_cookies)
        .max_age(cookie::time::Duration::days(365))
        .build()
        .to_string();
    redirect(&back, &[cookie])
}

/// A path on this site: one leading `/`, and nothing a browser would strip or turn into one
/// (`\`, tabs, newlines), so `//evil.example` and `/\t/evil.example` stay off the table.
fn same_site_path(p: &str) -> bool {
    p.starts_with('/')
        && !p[1..].starts_with(['/', '\\'])
        && !p
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_switch_goes_back_to_this_site_only() {
        assert!(same_site_path("/usage?since=7d") && same_site_path("/"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://x",
            "",
            "/\n/x",
        ] {
            assert!(!same_site_path(bad), "{bad:?}");
        }
    }
}
