//! The adapters: the list and its actions (rotate, delete, the Test button), the form that
//! creates one, and the page that shows a new key once with every client's setup.

use super::{Ctx, Form, json_response, query_value, redirect, urlencode, vars};
use crate::admin::PanelSession;
use crate::admin::i18n::Lang;
use crate::admin::manage::{
    AdapterView, ApiError, CreateRequest, Manager, ProviderKeyView, RotateRequest, SourceRequest,
};
use crate::telemetry::outcome::FailureReason;
use http::{Method, Response};
use minijinja::Value;
use serde::Serialize;

pub(super) const PROTOCOLS: &[&str] = &["openai", "anthropic", "responses", "gemini"];

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
    confirm_rotate: String,
    /// Every provider key's state in the page's language.
    key_states: Vec<KeyState>,
}

/// One provider key on the list: where it is (route, source, index, label) and its state.
#[derive(Serialize)]
struct KeyState {
    place: String,
    label: Option<String>,
    text: String,
    class: &'static str,
}

/// A provider key's state in the page's language, and its status class.
pub(super) fn key_state(cx: &Ctx, k: &ProviderKeyView) -> (String, &'static str) {
    let detail = k.detail.as_deref().unwrap_or_default();
    let (key, hole, class) = match k.health {
        "healthy" => ("key_healthy", "", "ok"),
        "half_open" => ("key_half_open", "", "warn"),
        "cooling" => ("key_cooling", "until", "warn"),
        "failing" => ("key_failing", "at", "warn"),
        "disabled" => ("key_disabled", "status", "bad"),
        _ => ("key_missing", "var", "bad"),
    };
    (cx.lang.fill(key, &[(hole, detail)]), class)
}

/// Why the provider failed, in the page's language.
fn reason_text(cx: &Ctx, reason: FailureReason) -> String {
    match reason {
        FailureReason::Connect => cx.t("reason_connect").to_owned(),
        FailureReason::Timeout => cx.t("reason_timeout").to_owned(),
        FailureReason::Tls => cx.t("reason_tls").to_owned(),
        FailureReason::Reset => cx.t("reason_reset").to_owned(),
        FailureReason::Protocol => cx.t("reason_protocol").to_owned(),
        FailureReason::Http(s) => cx.lang.fill("reason_http", &[("status", &s.to_string())]),
    }
}

/// "failing since 10:02: the provider refuses connections", in the page's language.
fn failing_text(cx: &Ctx, view: &AdapterView) -> String {
    let Some(o) = &view.last_outcome else {
        return cx.t("status_cooling").to_owned();
    };
    let reason = reason_text(cx, o.reason.unwrap_or(FailureReason::Connect));
    let since = super::when(&o.since);
    cx.lang
        .fill("status_failing", &[("since", &since), ("reason", &reason)])
}

fn row(cx: &Ctx, view: AdapterView) -> Row {
    let (status_text, status_class) = match view.status.as_str() {
        "ok" => (cx.t("status_ok").to_owned(), "ok"),
        "failing" => (failing_text(cx, &view), "bad"),
        "cooling down" => (cx.t("status_cooling").to_owned(), "warn"),
        "provider key refused" => (cx.t("status_refused").to_owned(), "warn"),
        other => (other.to_owned(), "warn"),
    };
    let key_states = view
        .provider_keys
        .iter()
        .map(|k| {
            let route = match k.route.as_str() {
                "default" => cx.t("route_default").to_owned(),
                name => name.to_owned(),
            };
            let source = match k.source {
                0 => String::new(),
                n => format!(
                    " · {}",
                    cx.lang.fill("fallback_n", &[("n", &n.to_string())])
                ),
            };
            let key = cx
                .lang
                .fill("provider_key_n", &[("n", &(k.key + 1).to_string())]);
            let (text, class) = key_state(cx, k);
            KeyState {
                place: format!("{route}{source} · {key}"),
                label: k.label.clone(),
                text,
                class,
            }
        })
        .collect();
    Row {
        confirm_text: cx.lang.fill("confirm_delete", &[("name", &view.name)]),
        confirm_rotate: cx.lang.fill("confirm_rotate", &[("name", &view.name)]),
        status_text,
        status_class,
        key_states,
        view,
    }
}

pub(super) fn list_page(
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
        _ => super::say(cx, &e),
    };
    list_page(cx, session, Some(message), e.status)
}

pub(super) async fn rotate(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let request = RotateRequest {
        grace: form.opt("grace"),
        label: None,
        new_label: form.opt("new_label"),
    };
    let version = form.opt("version");
    match cx
        .manager()
        .rotate(&session.actor, name, request, version.as_deref())
        .await
    {
        Ok(issued) => {
            cx.app.sessions.set_flash(&session.cookie, &issued).await;
            redirect(&format!("/adapters/{}/key", urlencode(name)), &[])
        }
        Err(e) => refused(cx, session, e),
    }
}

pub(super) async fn delete(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
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
pub(super) async fn test(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    match cx.manager().probe(&session.actor, name).await {
        Ok(mut result) => {
            // In the user's words: why no answer came, or the status with the provider's own
            // message (masked); the English detail only for admins.
            if !result.ok {
                let said = match (result.reason, result.status) {
                    (Some(reason), _) => reason_text(cx, reason),
                    (None, Some(status)) => {
                        let http = reason_text(cx, FailureReason::Http(status));
                        match &result.error {
                            Some(provider) => format!("{http}: {provider}"),
                            None => http,
                        }
                    }
                    (None, None)
                        if result
                            .error
                            .as_deref()
                            .is_some_and(|e| e.contains("internal address")) =>
                    {
                        cx.t("err_internal_source").to_owned()
                    }
                    (None, None) => cx.t("err_generic").to_owned(),
                };
                let admin = session.actor.admin;
                let detail = result
                    .error
                    .take()
                    .filter(|_| admin && result.status.is_none());
                result.error = Some(match detail {
                    Some(d) => format!("{said} ({d})"),
                    None => said,
                });
            }
            json_response(200, serde_json::to_value(result).unwrap_or_default())
        }
        Err(e) => json_response(
            e.status,
            serde_json::json!({"ok": false, "status": null, "latency_ms": 0, "error": e.message}),
        ),
    }
}

// ---- creating an adapter ---------------------------------------------------------------

/// What the form shows again after an error: everything but the provider key.
#[derive(Default, Serialize)]
pub(super) struct NewForm {
    name: String,
    preset: String,
    base_url: String,
    model: String,
    protocol: String,
    label: String,
    /// Which client's setup the key page shows first.
    client: String,
}

pub(super) fn new_page(
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
        (
            "presets",
            Value::from_serialize(cx.manager().presets_for(&session.actor)),
        ),
        ("protocols", Value::from_serialize(PROTOCOLS)),
        ("cap_text", Value::from(cap)),
        ("can_create", Value::from(can_create)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "new.html", "new", page)
}

pub(super) async fn create(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    let form = NewForm {
        name: f.get("name").trim().to_owned(),
        preset: f.get("preset").trim().to_owned(),
        base_url: f.get("base_url").trim().to_owned(),
        model: f.get("model").trim().to_owned(),
        protocol: f.get("protocol").trim().to_owned(),
        label: f.get("label").trim().to_owned(),
        client: f.get("client").trim().to_owned(),
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
        routes: Vec::new(),
    };
    match cx.manager().create(&session.actor, request).await {
        Ok(issued) => {
            let to = format!(
                "/adapters/{}/key?client={}",
                urlencode(&issued.adapter.name),
                urlencode(&form.client)
            );
            cx.app.sessions.set_flash(&session.cookie, &issued).await;
            redirect(&to, &[])
        }
        Err(e) => new_page(cx, session, &form, Some(super::say(cx, &e)), e.status),
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
fn setup_blocks(
    lang: Lang,
    setup: &serde_json::Value,
    base: &str,
    key: &str,
    model: &str,
) -> Vec<SetupBlock> {
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
        SetupBlock {
            note: Some(lang.fill("setup_codex_note", &[("model", model)])),
            ..block("codex-config", "setup_codex", s("/codex/config_toml"))
        },
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

/// The chosen client's blocks first, the others to fold away ("several" or none: all first).
fn first_for_client(blocks: Vec<SetupBlock>, client: &str) -> (Vec<SetupBlock>, Vec<SetupBlock>) {
    let prefix = match client {
        "claude_code" => "claude-",
        "cline" => "cline",
        "codex" => "codex-",
        "gemini_cli" => "gemini-",
        "sdk" => "-sdk",
        _ => return (blocks, Vec::new()),
    };
    let chosen = |b: &SetupBlock| match prefix {
        "-sdk" => b.id.ends_with("-sdk") || b.id == "google-genai",
        p => b.id.starts_with(p),
    };
    blocks.into_iter().partition(chosen)
}

pub(super) async fn key_page(
    cx: &Ctx<'_>,
    session: &PanelSession,
    name: &str,
) -> Response<Vec<u8>> {
    let issued = cx.app.sessions.take_flash(&session.cookie, name).await;
    let blocks = issued
        .as_ref()
        .map(|i| setup_blocks(cx.lang, &i.setup, &i.base_url, &i.api_key, &i.model))
        .unwrap_or_default();
    let client = query_value(&cx.req.query, "client").unwrap_or_default();
    let (blocks, other_blocks) = first_for_client(blocks, &client);
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("key_title", &[("name", name)])),
        ),
        ("issued", Value::from_serialize(&issued)),
        ("blocks", Value::from_serialize(&blocks)),
        ("other_blocks", Value::from_serialize(&other_blocks)),
        ("name", Value::from(name)),
        (
            "leave_warning",
            Value::from(issued.is_some().then(|| cx.t("key_lang_warning"))),
        ),
    ]);
    cx.render(200, "key.html", "adapters", page)
}

/// What the snippets say where the key goes, on the setup page shown after the key page.
const KEY_PLACEHOLDER: &str = "fp-REPLACE-WITH-YOUR-KEY";

/// Every client's setup for an adapter, later: the key is not known any more, so a
/// placeholder stands where it goes.
pub(super) fn setup_page(cx: &Ctx, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let Some(view) = cx
        .manager()
        .list(&session.actor)
        .into_iter()
        .find(|a| a.name == name)
    else {
        return cx.not_found();
    };
    let setup = crate::config::setup::client_setup(&view.base_url, KEY_PLACEHOLDER);
    let blocks = setup_blocks(
        cx.lang,
        &setup,
        &view.base_url,
        KEY_PLACEHOLDER,
        &view.model,
    );
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("setup_page_title", &[("name", name)])),
        ),
        (
            "placeholder_note",
            Value::from(cx.lang.fill(
                "setup_placeholder_note",
                &[("placeholder", KEY_PLACEHOLDER)],
            )),
        ),
        ("base_url", Value::from(view.base_url)),
        ("blocks", Value::from_serialize(&blocks)),
    ]);
    cx.render(200, "setup.html", "adapters", page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_blocks_carry_the_key_for_every_client() {
        let setup = crate::config::setup::client_setup("http://127.0.0.1:8787", "fp-k");
        let blocks = setup_blocks(Lang::En, &setup, "http://127.0.0.1:8787", "fp-k", "m");
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
}
