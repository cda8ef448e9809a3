//! The web panel, server-rendered: login, the adapter list (test, rotate, delete), creating an
//! adapter, the new key shown once with every client's setup, usage charts, and the users
//! page for admins. Pages are minijinja templates (auto-escaped) embedded in the binary with
//! the stylesheet and the small script; every state-changing form is a POST carrying the
//! session's CSRF token, answered with a redirect (POST-redirect-GET) or the form again with
//! the error. Words come from [`i18n`] in English or Chinese. What the pages do to adapters
//! is `manage::Manager`'s, exactly as the management API does it.

use super::{charts, i18n};

use super::manage::{AdapterView, ApiError, CreateRequest, Manager, RotateRequest, SourceRequest};
use super::{AdminApp, AdminRequest, LoginError, PanelSession, auth, json_response};
use http::{Method, Response};
use i18n::Lang;
use minijinja::{Environment, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The templates, by name (also read by the i18n test: every `t.key` they use exists).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("list.html", include_str!("templates/list.html")),
    ("new.html", include_str!("templates/new.html")),
    ("key.html", include_str!("templates/key.html")),
    (
        "confirm_delete.html",
        include_str!("templates/confirm_delete.html"),
    ),
    ("usage.html", include_str!("templates/usage.html")),
    ("users.html", include_str!("templates/users.html")),
    ("message.html", include_str!("templates/message.html")),
];
const CSS: &str = include_str!("static/panel.css");
const JS: &str = include_str!("static/panel.js");

/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "lang";
const PROTOCOLS: &[&str] = &["openai", "anthropic", "responses", "gemini"];
const RANGES: &[&str] = &["24h", "7d", "30d"];
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
        .header("referrer-policy", "no-referrer")
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

fn asset(content_type: &str, body: &str) -> Response<Vec<u8>> {
    let b = Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .header("x-content-type-options", "nosniff");
    finish(b, body.as_bytes().to_vec())
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

fn query_value(query: &str, name: &str) -> Option<String> {
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

// ---- routing ---------------------------------------------------------------------------

pub async fn handle(app: &AdminApp, req: &AdminRequest) -> Response<Vec<u8>> {
    let lang = Lang::negotiate(
        auth::cookie_value(&req.headers, LANG_COOKIE).as_deref(),
        req.header("accept-language"),
    );
    let cx = Ctx { app, req, lang };
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    // Another site's form (login CSRF included): browsers say so in Sec-Fetch-Site.
    if post && req.header("sec-fetch-site") == Some("cross-site") {
        return cx.message(403, cx.t("csrf_failed"), "");
    }
    match req.path.as_str() {
        "/static/panel.css" if get => return asset("text/css; charset=utf-8", CSS),
        "/static/panel.js" if get => return asset("text/javascript; charset=utf-8", JS),
        "/lang" if get => return switch_lang(&cx),
        "/login" if get => return login_page(&cx),
        "/login" if post => return login(&cx).await,
        "/logout" if post => return logout(&cx),
        _ => {}
    }
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
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
        (true, _, []) => list_page(&cx, session, None, 200),
        (true, _, ["adapters", "new"]) => new_page(&cx, session, &NewForm::default(), None, 200),
        (_, true, ["adapters", "new"]) => create(&cx, session).await,
        (true, _, ["adapters", name, "key"]) => key_page(&cx, session, name),
        (_, true, ["adapters", name, "rotate"]) => rotate(&cx, session, name).await,
        (_, true, ["adapters", name, "delete"]) => delete(&cx, session, name).await,
        (_, true, ["adapters", name, "test"]) => test(&cx, session, name).await,
        (true, _, ["usage"]) => usage_page(&cx, session).await,
        (true, _, ["users"]) => users_page(&cx, session, 200, None),
        (_, true, ["users", name]) => set_cap(&cx, session, name).await,
        _ => cx.not_found(),
    }
}

/// `GET /lang?to=zh&back=/usage`: remembers the language and goes back (same site only).
fn switch_lang(cx: &Ctx) -> Response<Vec<u8>> {
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

// ---- login -----------------------------------------------------------------------------

fn login_form(
    cx: &Ctx,
    status: u16,
    user: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response<Vec<u8>> {
    let page = vars([
        ("login_user", Value::from(user)),
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "login.html", "login", page)
}

fn login_page(cx: &Ctx) -> Response<Vec<u8>> {
    if cx.req.session.is_some() {
        return redirect("/", &[]);
    }
    let notice = if query_value(&cx.req.query, "bye").is_some() {
        Some(cx.t("logged_out"))
    } else if query_value(&cx.req.query, "expired").is_some() {
        Some(cx.t("session_expired"))
    } else {
        None
    };
    login_form(cx, 200, "", notice, None)
}

async fn login(cx: &Ctx<'_>) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let user = form.get("user").trim();
    match cx
        .app
        .login(user, form.get("password"), &cx.req.client_ip)
        .await
    {
        Ok((cookie, _csrf)) => redirect("/", &[cookie]),
        Err(LoginError::Wrong) => login_form(cx, 401, user, None, Some(cx.t("login_failed"))),
        Err(LoginError::RateLimited(_)) => {
            login_form(cx, 429, user, None, Some(cx.t("login_limited")))
        }
    }
}

fn logout(cx: &Ctx) -> Response<Vec<u8>> {
    let Some(session) = &cx.req.session else {
        return redirect("/login", &[]);
    };
    if !auth::csrf_matches(&session.csrf, Some(Form::parse(&cx.req.body).get("csrf"))) {
        return cx.message(403, cx.t("csrf_failed"), "");
    }
    redirect("/login?bye=1", &[cx.app.logout(&session.cookie)])
}

// ---- the adapter list ------------------------------------------------------------------

/// "2 of 5 adapters used", and whether another may be created.
fn cap_text(cx: &Ctx, session: &PanelSession) -> (String, bool) {
    let (used, max) = cx.manager().cap(&session.actor);
    let used_s = used.to_string();
    match max {
        Some(max) => (
            cx.lang
                .fill("cap_used", &[("used", &used_s), ("max", &max.to_string())]),
            used < max,
        ),
        None => (cx.lang.fill("cap_used_nomax", &[("used", &used_s)]), true),
    }
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    view: AdapterView,
    status_text: String,
    status_class: &'static str,
    confirm_text: String,
}

fn row(cx: &Ctx, view: AdapterView) -> Row {
    let (status_text, status_class) = match view.status.as_str() {
        "ok" => (cx.t("status_ok").to_owned(), "ok"),
        "cooling down" => (cx.t("status_cooling").to_owned(), "warn"),
        other => (other.to_owned(), "warn"),
    };
    Row {
        confirm_text: cx.lang.fill("confirm_delete", &[("name", &view.name)]),
        status_text,
        status_class,
        view,
    }
}

fn list_page(
    cx: &Ctx,
    session: &PanelSession,
    error: Option<String>,
    status: u16,
) -> Response<Vec<u8>> {
    let adapters = cx.manager().list(&session.actor);
    let deleted = query_value(&cx.req.query, "deleted");
    // A user with nothing yet starts at the form, as the original panel does.
    if adapters.is_empty() && error.is_none() && deleted.is_none() && cx.req.method == Method::GET {
        return redirect("/adapters/new", &[]);
    }
    let notice = deleted
        .filter(|d| !adapters.iter().any(|a| &a.name == d))
        .map(|d| cx.lang.fill("deleted", &[("name", &d)]));
    let (cap, can_create) = cap_text(cx, session);
    let rows: Vec<Row> = adapters.into_iter().map(|a| row(cx, a)).collect();
    let page = vars([
        ("adapters", Value::from_serialize(&rows)),
        ("cap_text", Value::from(cap)),
        ("can_create", Value::from(can_create)),
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "list.html", "adapters", page)
}

/// A refused rotate or delete: the list again, with why.
fn refused(cx: &Ctx, session: &PanelSession, e: ApiError) -> Response<Vec<u8>> {
    let message = match e.status {
        409 => cx.t("stale").to_owned(),
        _ => e.message,
    };
    list_page(cx, session, Some(message), e.status)
}

async fn rotate(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let request = RotateRequest {
        grace: form.opt("grace"),
        label: None,
    };
    let version = form.opt("version");
    match cx
        .manager()
        .rotate(&session.actor, name, request, version.as_deref())
        .await
    {
        Ok(issued) => {
            cx.app.sessions.set_flash(&session.cookie, issued);
            redirect(&format!("/adapters/{}/key", urlencode(name)), &[])
        }
        Err(e) => refused(cx, session, e),
    }
}

async fn delete(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let version = form.opt("version");
    if form.get("confirm") != "yes" {
        // Without the script's confirm(): ask on a page of its own.
        let page = vars([
            (
                "title",
                Value::from(cx.lang.fill("confirm_delete_title", &[("name", name)])),
            ),
            (
                "confirm_text",
                Value::from(cx.lang.fill("confirm_delete", &[("name", name)])),
            ),
            ("name", Value::from(name)),
            ("version", Value::from(version)),
        ]);
        return cx.render(200, "confirm_delete.html", "adapters", page);
    }
    match cx
        .manager()
        .delete(&session.actor, name, version.as_deref())
        .await
    {
        Ok(()) => redirect(&format!("/?deleted={}", urlencode(name)), &[]),
        Err(e) => refused(cx, session, e),
    }
}

/// The Test button's fetch: `{"ok", "status", "latency_ms", "error"}`.
async fn test(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    match cx.manager().probe(&session.actor, name).await {
        Ok(result) => json_response(200, serde_json::to_value(result).unwrap_or_default()),
        Err(e) => json_response(
            e.status,
            serde_json::json!({"ok": false, "status": null, "latency_ms": 0, "error": e.message}),
        ),
    }
}

// ---- creating an adapter ---------------------------------------------------------------

/// What the form shows again after an error: everything but the provider key.
#[derive(Default, Serialize)]
struct NewForm {
    name: String,
    preset: String,
    base_url: String,
    model: String,
    protocol: String,
    label: String,
}

fn new_page(
    cx: &Ctx,
    session: &PanelSession,
    form: &NewForm,
    error: Option<String>,
    status: u16,
) -> Response<Vec<u8>> {
    let (cap, can_create) = cap_text(cx, session);
    let error = error.or_else(|| (!can_create).then(|| cx.t("cap_full").to_owned()));
    let page = vars([
        ("form", Value::from_serialize(form)),
        ("presets", Value::from_serialize(Manager::presets())),
        ("protocols", Value::from_serialize(PROTOCOLS)),
        ("cap_text", Value::from(cap)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "new.html", "new", page)
}

async fn create(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    let form = NewForm {
        name: f.get("name").trim().to_owned(),
        preset: f.get("preset").trim().to_owned(),
        base_url: f.get("base_url").trim().to_owned(),
        model: f.get("model").trim().to_owned(),
        protocol: f.get("protocol").trim().to_owned(),
        label: f.get("label").trim().to_owned(),
    };
    let preset = Manager::presets()
        .into_iter()
        .find(|p| p.name == form.preset);
    // A preset decides the protocol unless its base URL was replaced by another.
    let protocol = match &preset {
        Some(p) if form.base_url.is_empty() || form.base_url == p.base_url => None,
        _ => Some(form.protocol.clone()).filter(|p| !p.is_empty()),
    };
    let request = CreateRequest {
        name: form.name.clone(),
        source: SourceRequest {
            base_url: Some(form.base_url.clone()).filter(|u| !u.is_empty()),
            api_key: f.get("api_key").to_owned(),
            model: form.model.clone(),
            protocol,
            preset: preset.map(|p| p.name.to_owned()),
            ..SourceRequest::default()
        },
        label: Some(form.label.clone()).filter(|l| !l.is_empty()),
        owner: None,
    };
    match cx.manager().create(&session.actor, request).await {
        Ok(issued) => {
            let to = format!("/adapters/{}/key", urlencode(&issued.adapter.name));
            cx.app.sessions.set_flash(&session.cookie, issued);
            redirect(&to, &[])
        }
        Err(e) => new_page(cx, session, &form, Some(e.message), e.status),
    }
}

// ---- the key, once ---------------------------------------------------------------------

/// One copy-paste block of the key page.
#[derive(Serialize)]
struct SetupBlock {
    id: &'static str,
    title: &'static str,
    note: Option<String>,
    text: Option<String>,
}

/// The blocks for every client, from `client_setup`'s JSON (a block whose part is missing
/// is left out).
fn setup_blocks(lang: Lang, setup: &serde_json::Value, base: &str, key: &str) -> Vec<SetupBlock> {
    let s = |path: &str| {
        setup
            .pointer(path)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let pretty = |path: &str| {
        setup
            .pointer(path)
            .and_then(|v| serde_json::to_string_pretty(v).ok())
    };
    let exports = |path: &str| {
        setup.pointer(path).and_then(|v| v.as_object()).map(|m| {
            m.iter()
                .map(|(k, v)| format!("export {k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    let cline_base = s("/cline/anthropic/base_url").unwrap_or_else(|| base.to_owned());
    let block = |id, title, text: Option<String>| SetupBlock {
        id,
        title: lang.t(title),
        note: None,
        text,
    };
    let blocks = vec![
        block("claude-env", "setup_claude_env", s("/claude_code/shell")),
        block(
            "claude-settings",
            "setup_claude_settings",
            pretty("/claude_code/settings_json"),
        ),
        SetupBlock {
            id: "cline",
            title: lang.t("setup_cline"),
            note: Some(lang.fill("setup_cline_text", &[("base", &cline_base)])),
            text: Some(format!(
                "API Provider: Anthropic\nAnthropic API Key: {key}\nUse custom base URL: {cline_base}"
            )),
        },
        block("codex-config", "setup_codex", s("/codex/config_toml")),
        block("codex-env", "setup_codex_env", exports("/codex/env")),
        block("gemini-env", "setup_gemini_env", s("/gemini_cli/shell")),
        block(
            "gemini-settings",
            "setup_gemini_settings",
            pretty("/gemini_cli/settings_json"),
        ),
        block("openai-sdk", "setup_openai_sdk", s("/openai_sdk")),
        block("anthropic-sdk", "setup_anthropic_sdk", s("/anthropic_sdk")),
        block("google-genai", "setup_google_genai", s("/google_genai")),
    ];
    blocks.into_iter().filter(|b| b.text.is_some()).collect()
}

fn key_page(cx: &Ctx, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let issued = cx.app.sessions.take_flash(&session.cookie, name);
    let blocks = issued
        .as_ref()
        .map(|i| setup_blocks(cx.lang, &i.setup, &i.base_url, &i.api_key))
        .unwrap_or_default();
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("key_title", &[("name", name)])),
        ),
        ("issued", Value::from_serialize(&issued)),
        ("blocks", Value::from_serialize(&blocks)),
    ]);
    cx.render(200, "key.html", "adapters", page)
}

// ---- usage -----------------------------------------------------------------------------

const HOUR_MS: i64 = 3_600_000;

#[derive(Default, Serialize)]
struct KeyTotals {
    label: String,
    total: bool,
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    /// Weighted by requests, shown as `123 ms`.
    latency: String,
    #[serde(skip)]
    duration_sum: f64,
}

impl KeyTotals {
    fn add(&mut self, r: &super::manage::UsageRow) {
        self.requests += r.requests;
        self.errors += r.errors;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cache_read_tokens += r.cache_read_tokens;
        self.duration_sum += r.avg_duration_ms * r.requests as f64;
        self.latency = match self.requests {
            0 => "—".into(),
            n => format!("{:.0} ms", self.duration_sum / n as f64),
        };
    }
}

/// One adapter's charts (safe SVG) and per-key totals.
fn usage_adapter(lang: Lang, name: &str, rows: &[&super::manage::UsageRow], axis: &[i64]) -> Vars {
    let n = axis.len();
    let index = |ms: i64| axis.iter().position(|b| *b == ms);
    let mut ok = vec![0.0; n];
    let mut errors = vec![0.0; n];
    let mut input = vec![0.0; n];
    let mut output = vec![0.0; n];
    let mut cached = vec![0.0; n];
    let mut duration = vec![0.0; n];
    let mut requests = vec![0.0; n];
    let mut keys: BTreeMap<&str, KeyTotals> = BTreeMap::new();
    let mut total = KeyTotals {
        label: lang.t("total").into(),
        total: true,
        ..KeyTotals::default()
    };
    for r in rows {
        if let Some(i) = index(r.bucket_start_ms) {
            ok[i] += r.requests.saturating_sub(r.errors) as f64;
            errors[i] += r.errors as f64;
            input[i] += r.input_tokens as f64;
            output[i] += r.output_tokens as f64;
            cached[i] += r.cache_read_tokens as f64;
            duration[i] += r.avg_duration_ms * r.requests as f64;
            requests[i] += r.requests as f64;
        }
        let label = if r.key_label.is_empty() {
            lang.t("no_label")
        } else {
            &r.key_label
        };
        keys.entry(label)
            .or_insert_with(|| KeyTotals {
                label: label.to_owned(),
                ..KeyTotals::default()
            })
            .add(r);
        total.add(r);
    }
    let latency: Vec<f64> = duration
        .iter()
        .zip(&requests)
        .map(|(d, n)| if *n > 0.0 { d / n } else { 0.0 })
        .collect();
    let series = |key: &str, class, values| charts::Series {
        name: lang.t(key),
        class,
        values,
    };
    let requests_chart = charts::bars(
        axis,
        &[
            series("series_requests", "s0", ok),
            series("series_errors", "s3", errors),
        ],
    );
    let tokens_chart = charts::bars(
        axis,
        &[
            series("series_input", "s0", input),
            series("series_output", "s1", output),
            series("series_cached", "s2", cached),
        ],
    );
    let latency_chart = charts::line(axis, &series("series_latency", "s0", latency));
    let mut table: Vec<KeyTotals> = keys.into_values().collect();
    table.push(total);
    vars([
        ("name", Value::from(name)),
        ("chart_requests", Value::from_safe_string(requests_chart)),
        ("chart_tokens", Value::from_safe_string(tokens_chart)),
        ("chart_latency", Value::from_safe_string(latency_chart)),
        ("keys", Value::from_serialize(&table)),
    ])
}

async fn usage_page(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let since = query_value(&cx.req.query, "since")
        .filter(|s| RANGES.contains(&s.as_str()))
        .unwrap_or_else(|| RANGES[0].to_owned());
    let period = humantime::parse_duration(&since).unwrap_or(Duration::from_secs(86_400));
    let mut page = vars([
        ("since", Value::from(since.as_str())),
        ("ranges", Value::from_serialize(RANGES)),
        ("enabled", Value::from(true)),
    ]);
    match cx.manager().usage(&session.actor, period).await {
        None => {
            page.insert("enabled", Value::from(false));
        }
        Some(Err(e)) => {
            page.insert(
                "usage_error",
                Value::from(cx.lang.fill("usage_error", &[("error", &e)])),
            );
        }
        Some(Ok(rows)) => {
            let now = now_ms();
            let axis = charts::buckets(now - period.as_millis() as i64, now, HOUR_MS);
            let mut by_adapter: BTreeMap<&str, Vec<&super::manage::UsageRow>> = BTreeMap::new();
            for r in &rows {
                by_adapter.entry(r.adapter.as_str()).or_default().push(r);
            }
            let adapters: Vec<Value> = by_adapter
                .iter()
                .map(|(name, rows)| Value::from(usage_adapter(cx.lang, name, rows, &axis)))
                .collect();
            page.insert("adapters", Value::from(adapters));
        }
    }
    cx.render(200, "usage.html", "usage", page)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---- users (admins) --------------------------------------------------------------------

fn users_page(
    cx: &Ctx,
    session: &PanelSession,
    status: u16,
    error: Option<String>,
) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let users = cx.manager().users();
    let saved = query_value(&cx.req.query, "saved");
    let notice = saved.and_then(|name| {
        let u = users.iter().find(|u| u.name == name)?;
        Some(cx.lang.fill(
            "cap_saved",
            &[("name", &u.name), ("max", &u.max_adapters.to_string())],
        ))
    });
    let page = vars([
        ("users", Value::from_serialize(&users)),
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "users.html", "users", page)
}

async fn set_cap(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let form = Form::parse(&cx.req.body);
    let Ok(max) = form.get("max_adapters").trim().parse::<usize>() else {
        return users_page(
            cx,
            session,
            400,
            Some(format!("max_adapters: {}", cx.t("bad_request"))),
        );
    };
    match cx.manager().set_cap(&session.actor, name, max).await {
        Ok(()) => redirect(&format!("/users?saved={}", urlencode(name)), &[]),
        Err(e) => users_page(cx, session, e.status, Some(e.message)),
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

    #[test]
    fn urlencode_keeps_unreserved_only() {
        assert_eq!(urlencode("/usage?since=7d"), "%2Fusage%3Fsince%3D7d");
        assert_eq!(urlencode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(urlencode("中"), "%E4%B8%AD");
    }

    #[test]
    fn the_setup_blocks_carry_the_key_for_every_client() {
        let setup = crate::config::setup::client_setup("http://127.0.0.1:8787", "fp-k");
        let blocks = setup_blocks(Lang::En, &setup, "http://127.0.0.1:8787", "fp-k");
        let ids: Vec<&str> = blocks.iter().map(|b| b.id).collect();
        assert_eq!(
            ids,
            [
                "claude-env",
                "claude-settings",
                "cline",
                "codex-config",
                "codex-env",
                "gemini-env",
                "gemini-settings",
                "openai-sdk",
                "anthropic-sdk",
                "google-genai"
            ]
        );
        let text = |id| {
            blocks
                .iter()
                .find(|b| b.id == id)
                .and_then(|b| b.text.clone())
                .unwrap()
        };
        assert!(text("claude-env").contains("ANTHROPIC_AUTH_TOKEN=fp-k"));
        assert!(text("codex-env").contains("export FLEXIPROXY_API_KEY=fp-k"));
        assert!(
            text("claude-settings").contains("\"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:8787\"")
        );
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
