//! The web panel, server-rendered: login, the adapter list (test, rotate, delete), creating an
//! adapter, the new key shown once with every client's setup, usage charts, and the users
//! page for admins. Pages are minijinja templates (auto-escaped) embedded in the binary with
//! the stylesheet and the small script; every state-changing form is a POST carrying the
//! session's CSRF token, answered with a redirect (POST-redirect-GET) or the form again with
//! the error. Words come from [`i18n`] in English or Chinese. What the pages do to adapters
//! is `manage::Manager`'s, exactly as the management API does it.
//!
//! One file per area: `login` (login and logout), `adapters` (the list and its actions, the
//! create form, the key shown once), `edit` (an adapter's source, key pools and routes),
//! `usage`, `users`, and `assets` (the stylesheet, the script and the language switch). This file holds the routing, the per-request context and
//! what the pages share: rendering, responses, forms.

mod account;
mod adapters;
mod assets;
mod audit;
mod check;
mod edit;
mod exchanges;
mod login;
mod reset;
mod signup;
mod sso;
mod usage;
mod users;

use super::i18n;
use super::manage::Manager;
use super::{AdminApp, AdminRequest, auth, json_response};
use assets::{CSS, JS, asset};
use http::{Method, Response};
use i18n::Lang;
use minijinja::{Environment, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The templates, by name (also read by the i18n test: every `t.key` they use exists).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("list.html", include_str!("../templates/list.html")),
    ("new.html", include_str!("../templates/new.html")),
    ("edit.html", include_str!("../templates/edit.html")),
    ("key.html", include_str!("../templates/key.html")),
    ("setup.html", include_str!("../templates/setup.html")),
    (
        "setup_blocks.html",
        include_str!("../templates/setup_blocks.html"),
    ),
    (
        "confirm_delete.html",
        include_str!("../templates/confirm_delete.html"),
    ),
    ("usage.html", include_str!("../templates/usage.html")),
    (
        "exchanges.html",
        include_str!("../templates/exchanges.html"),
    ),
    ("check.html", include_str!("../templates/check.html")),
    ("users.html", include_str!("../templates/users.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("reset.html", include_str!("../templates/reset.html")),
];

/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "lang";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "panel template does not parse");
            }
        }
        env.add_filter("urlencode", |s: String| urlencode(&s));
        env.add_filter("when", |s: String| when(&s));
        env
    })
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2025-09-14T10:00:00Z` → `2025-09-14 10:00`.
fn when(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

// ---- responses -------------------------------------------------------------------------

fn with_security_headers(b: http::response::Builder) -> http::response::Builder {
    b.header("cache-control", "no-store")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        // Not `no-referrer`: under it browsers send `Origin: null` even on the panel's own
        // forms, and the origin check could not tell them from another site's.
        .header("referrer-policy", "same-origin")
}

fn finish(b: http::response::Builder, body: Vec<u8>) -> Response<Vec<u8>> {
    b.header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn html(status: u16, body: String) -> Response<Vec<u8>> {
    let b = with_security_headers(Response::builder().status(status))
        .header("content-type", "text/html; charset=utf-8");
    finish(b, body.into_bytes())
}

/// 303 See Other to `location`, setting `cookies`.
fn redirect(location: &str, cookies: &[String]) -> Response<Vec<u8>> {
    let mut b = with_security_headers(Response::builder().status(303)).header("location", location);
    for c in cookies {
        b = b.header("set-cookie", c);
    }
    finish(b, Vec::new())
}

// ---- refusals in the user's words ------------------------------------------------------

/// A refusal as the panel says it: the field by its label and what to do, from the tables
/// (never a config key, a Rust error or the English message); the English message goes to
/// the page's "details" fold for admins.
fn say(cx: &Ctx, e: &crate::admin::manage::ApiError) -> String {
    let key = format!("err_{}", e.code);
    let reason = match cx.lang.t(&key) {
        "?" => cx.t("err_generic"),
        text => text,
    };
    let text = match e.field.as_deref().map(|f| field_label(cx, f)) {
        Some(label) if !label.is_empty() => cx
            .lang
            .fill("err_field", &[("field", &label), ("reason", reason)]),
        _ => reason.to_owned(),
    };
    let admin = cx.req.session.as_ref().is_some_and(|s| s.actor.admin);
    if let Ok(mut detail) = cx.error_detail.lock() {
        *detail = admin.then(|| e.message.clone());
    }
    text
}

/// `routes[1].source.base_url` → "Route 2 · Provider base URL", in the page's language.
fn field_label(cx: &Ctx, path: &str) -> String {
    let n = |i: usize| (i + 1).to_string();
    let mut parts: Vec<String> = Vec::new();
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let label = match (name, index) {
            ("routes", Some(i)) => cx.lang.fill("route_n", &[("n", &n(i))]),
            ("fallbacks", Some(i)) => cx.lang.fill("fallback_n", &[("n", &n(i))]),
            ("api_keys", Some(i)) => cx.lang.fill("provider_key_n", &[("n", &n(i))]),
            ("name", _) if parts.is_empty() => cx.t("field_name").to_owned(),
            ("name", _) => cx.t("route_name").to_owned(),
            ("base_url", _) => cx.t("field_base_url").to_owned(),
            ("api_key" | "api_keys", _) => cx.t("field_api_key").to_owned(),
            ("model", _) => cx.t("field_model").to_owned(),
            ("protocol", _) => cx.t("field_protocol").to_owned(),
            ("preset", _) => cx.t("field_provider").to_owned(),
            ("label" | "new_label", _) => cx.t("field_label").to_owned(),
            ("username", _) => cx.t("login_user").to_owned(),
            ("password", _) => cx.t("login_password").to_owned(),
            ("new_password", _) => cx.t("new_password").to_owned(),
            ("current_password", _) => cx.t("current_password").to_owned(),
            ("invite", _) => cx.t("invite_code").to_owned(),
            ("uses", _) => cx.t("invite_uses").to_owned(),
            ("expires", _) => cx.t("invite_expires").to_owned(),
            ("when", _) => cx.t("route_conditions").to_owned(),
            ("model_map", _) => cx.t("model_map_title").to_owned(),
            (
                "requests_per_minute"
                | "concurrent_requests"
                | "tokens_per_day"
                | "tokens_per_month",
                _,
            ) => cx.t(&format!("limit_{name}")).to_owned(),
            // What a user need not be told: the source, `limits`, a condition's own name.
            _ => continue,
        };
        parts.push(label);
    }
    parts.join(" · ")
}

// ---- the request -----------------------------------------------------------------------

/// The form fields of a POST body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim().to_owned()).filter(|v| !v.is_empty())
    }
}

pub(crate) fn query_value(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A page being answered: the request, its language and its user.
struct Ctx<'a> {
    app: &'a AdminApp,
    req: &'a AdminRequest,
    lang: Lang,
    /// The English detail of a refusal being shown, for an admin's "details" fold.
    error_detail: std::sync::Mutex<Option<String>>,
}

/// The page's own values on top of the common ones.
type Vars = BTreeMap<&'static str, Value>;

fn vars<const N: usize>(items: [(&'static str, Value); N]) -> Vars {
    items.into_iter().collect()
}

impl Ctx<'_> {
    fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    fn manager(&self) -> &Manager {
        &self.app.manager
    }

    /// Renders `template` with the common values (language table, user, CSRF token, nav).
    fn render(&self, status: u16, template: &str, nav: &str, mut page: Vars) -> Response<Vec<u8>> {
        let session = self.req.session.as_ref();
        let back = match (&self.req.method, nav) {
            (&Method::GET, _) if self.req.query.is_empty() => self.req.path.clone(),
            (&Method::GET, _) => format!("{}?{}", self.req.path, self.req.query),
            (_, "new") => "/adapters/new".into(),
            (_, "users") => "/users".into(),
            (_, "account") => "/account".into(),
            (_, "login") => "/login".into(),
            _ => "/".into(),
        };
        let common = [
            ("t", Value::from_serialize(self.lang.table())),
            ("lang", Value::from(self.lang.code())),
            ("html_lang", Value::from(self.lang.html_lang())),
            ("other_lang", Value::from(self.lang.other().code())),
            ("other_lang_name", Value::from(self.lang.other().endonym())),
            ("back", Value::from(back)),
            ("nav", Value::from(nav)),
            ("user", Value::from(session.map(|s| s.actor.name.clone()))),
            ("admin", Value::from(session.is_some_and(|s| s.actor.admin))),
            ("csrf", Value::from(session.map(|s| s.csrf.clone()))),
            (
                "error_detail",
                Value::from(self.error_detail.lock().ok().and_then(|d| d.clone())),
            ),
        ];
        for (k, v) in common {
            page.entry(k).or_insert(v);
        }
        let rendered = env()
            .get_template(template)
            .and_then(|t| t.render(Value::from_serialize(&page)));
        match rendered {
            Ok(body) => html(status, body),
            Err(e) => {
                tracing::error!(template, error = %e, "panel page failed to render");
                html(
                    500,
                    "<!doctype html><title>500</title><p>The page failed to render.".into(),
                )
            }
        }
    }

    fn message(&self, status: u16, title: &str, text: &str) -> Response<Vec<u8>> {
        let page = vars([("title", Value::from(title)), ("text", Value::from(text))]);
        self.render(status, "message.html", "", page)
    }

    fn not_found(&self) -> Response<Vec<u8>> {
        self.message(404, self.t("not_found"), self.t("not_found_text"))
    }
}

/// Whether a request says it comes from a page of another origin: `Sec-Fetch-Site` other
/// than same-origin/none, or an `Origin` (`null` included) whose host and port are not the
/// ones the request was sent to (`Host`, or `X-Forwarded-Host` behind a reverse proxy).
pub(crate) fn from_another_origin(req: &AdminRequest) -> bool {
    if matches!(
        req.header("sec-fetch-site"),
        Some("cross-site") | Some("same-site")
    ) {
        return true;
    }
    let Some(origin) = req.header("origin") else {
        return false;
    };
    let Some(authority) = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
    else {
        return true; // `null` and anything unparseable
    };
    let default_port = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    let same = |host: &str| {
        host.eq_ignore_ascii_case(authority)
            || format!("{host}{default_port}").eq_ignore_ascii_case(authority)
            || host.eq_ignore_ascii_case(&format!("{authority}{default_port}"))
    };
    let forwarded = req
        .header("x-forwarded-host")
        .and_then(|h| h.split(',').next())
        .map(str::trim);
    !(req.header("host").is_some_and(same) || forwarded.is_some_and(same))
}

// ---- routing ---------------------------------------------------------------------------

pub async fn handle(app: &AdminApp, req: &AdminRequest) -> Response<Vec<u8>> {
    let lang = Lang::negotiate(
        auth::cookie_value(&req.headers, LANG_COOKIE).as_deref(),
        req.header("accept-language"),
    );
    let cx = Ctx {
        app,
        req,
        lang,
        error_detail: Default::default(),
    };
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    // Another site's form (login CSRF included): browsers say so in Sec-Fetch-Site and
    // Origin; either one is enough to refuse.
    if post && from_another_origin(req) {
        return cx.message(403, cx.t("csrf_failed"), "");
    }
    // A password-reset link: the token in the path is the credential, no session needed.
    if let Some(token) = req
        .path
        .strip_prefix("/reset/")
        .filter(|t| !t.contains('/'))
    {
        if get {
            return reset::reset_page(&cx, token);
        } else if post {
            return reset::reset(&cx, token).await;
        }
    }
    match req.path.as_str() {
        "/static/panel.css" if get => return asset("text/css; charset=utf-8", CSS),
        "/static/panel.js" if get => return asset("text/javascript; charset=utf-8", JS),
        "/lang" if get => return assets::switch_lang(&cx),
        "/login" if get => return login::login_page(&cx),
        "/login" if post => return login::login(&cx).await,
        "/logout" if post => return login::logout(&cx).await,
        "/signup" if get => return signup::signup_page(&cx),
        "/signup" if post => return signup::signup(&cx).await,
        _ => {}
    }
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    match (get, post, segments.as_slice()) {
        (_, true, ["sso", provider]) => return sso::start(&cx, provider).await,
        (true, _, ["sso", provider, "callback"]) => return sso::callback(&cx, provider).await,
        _ => {}
    }
    let Some(session) = &req.session else {
        if let ["adapters", _, "test"] = segments.as_slice() {
            return json_response(
                401,
                serde_json::json!({"ok": false, "error": "log in first"}),
            );
        }
        let to = if post { "/login?expired=1" } else { "/login" };
        return redirect(to, &[]);
    };
    if post {
        let presented = match segments.as_slice() {
            ["adapters", _, "test"] => req.header("x-csrf-token").map(str::to_owned),
            _ => Some(Form::parse(&req.body).get("csrf").to_owned()),
        };
        if !auth::csrf_matches(&session.csrf, presented.as_deref()) {
            if let ["adapters", _, "test"] = segments.as_slice() {
                let body = serde_json::json!({"ok": false, "error": cx.t("csrf_failed")});
                return json_response(403, body);
            }
            return cx.message(403, cx.t("csrf_failed"), "");
        }
    }
    match (get, post, segments.as_slice()) {
        (true, _, []) => adapters::list_page(&cx, session, None, 200),
        (true, _, ["adapters", "new"]) => {
            adapters::new_page(&cx, session, &adapters::NewForm::default(), None, 200)
        }
        (_, true, ["adapters", "new"]) => adapters::create(&cx, session).await,
        (true, _, ["adapters", name, "key"]) => adapters::key_page(&cx, session, name).await,
        (true, _, ["adapters", name, "setup"]) => adapters::setup_page(&cx, session, name),
        (true, _, ["adapters", name, "edit"]) => edit::edit_page(&cx, session, name, None, 200),
        (true, _, ["adapters", name, "exchanges"]) => exchanges::exchanges_page(&cx, session, name),
        (true, _, ["adapters", name, "check"]) => check::check_page(&cx, session, name),
        (_, true, ["adapters", name, "check"]) => check::check(&cx, session, name, false).await,
        (_, true, ["adapters", name, "check", "apply"]) => {
            check::check(&cx, session, name, true).await
        }
        (_, true, ["adapters", name, "edit"]) => edit::save(&cx, session, name).await,
        (_, true, ["adapters", name, "rotate"]) => adapters::rotate(&cx, session, name).await,
        (_, true, ["adapters", name, "delete"]) => adapters::delete(&cx, session, name).await,
        (_, true, ["adapters", name, "test"]) => adapters::test(&cx, session, name).await,
        (true, _, ["usage"]) => usage::usage_page(&cx, session).await,
        (true, _, ["usage.csv"]) => usage::usage_csv(&cx, session).await,
        (true, _, ["users"]) => users::users_page(&cx, session, 200, None),
        (_, true, ["users", name]) => users::set_cap(&cx, session, name).await,
        (_, true, ["users", name, "status"]) => users::set_status(&cx, session, name).await,
        (_, true, ["invites"]) => users::create_invite(&cx, session).await,
        (_, true, ["invites", id, "revoke"]) => users::revoke_invite(&cx, session, id).await,
        (true, _, ["account"]) => account::account_page(&cx, 200, None).await,
        (_, true, ["account", "password"]) => account::change_password(&cx, session).await,
        (_, true, ["account", "sessions"]) => account::end_sessions(&cx, None).await,
        (_, true, ["account", "sessions", id, "end"]) => account::end_sessions(&cx, Some(id)).await,
        (_, true, ["account", "delete"]) => account::delete_account(&cx, session).await,
        (_, true, ["users", name, "reset-link"]) => users::reset_link(&cx, session, name).await,
        (true, _, ["audit"]) => audit::audit_page(&cx, session).await,
        _ => cx.not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            env()
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn urlencode_keeps_unreserved_only() {
        assert_eq!(urlencode("/usage?since=7d"), "%2Fusage%3Fsince%3D7d");
        assert_eq!(urlencode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(urlencode("中"), "%E4%B8%AD");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = vars([
            ("t", Value::from_serialize(Lang::En.table())),
            ("title", Value::from("<script>x</script>")),
            ("text", Value::from("a & b")),
        ]);
        let out = env()
            .get_template("message.html")
            .unwrap()
            .render(Value::from_serialize(&page))
            .unwrap();
        assert!(out.contains("&lt;script&gt;x&lt;") && !out.contains("<script>x"));
        assert!(out.contains("a &amp; b"));
    }
}
