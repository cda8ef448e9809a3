//! The adapter's edit page: the default source's base URL and model, the keys of each pool
//! (add, remove; never shown), the routes (add, change, reorder, remove) and the client keys
//! (label, revoke). Every form
//! carries the file's version, so an edit made on a page that is out of date is refused
//! instead of undoing someone else's; each change goes through `Manager::patch`.

use super::adapters::{PROTOCOLS, key_state};
use super::{Ctx, Form, redirect, urlencode, vars};
use crate::admin::PanelSession;
use crate::admin::edits::{self, Edit, PoolOf};
use crate::admin::manage::{
    ApiError, KeyPatchRequest, Manager, PatchRequest, RouteRequest, SourceRequest,
};
use crate::config::adapter::{AdapterLimitsFile, ModelRuleFile, SourceFile};
use crate::config::presets;
use http::Response;
use minijinja::Value;
use serde::Serialize;

/// One key of a pool as the page lists it: never its text.
#[derive(Serialize)]
struct PoolKey {
    index: usize,
    number: usize,
    label: Option<String>,
    state: String,
    class: &'static str,
}

/// A route's form values and what the page says about it.
#[derive(Serialize)]
struct RouteRow {
    index: usize,
    /// Its name, or its index when it has none.
    shown_name: String,
    name: String,
    conditions: String,
    protocol: &'static str,
    source_host: String,
    when_model: String,
    when_images: &'static str,
    when_min_tokens: String,
    when_thinking: &'static str,
    preset: String,
    base_url: String,
    source_protocol: String,
    model: String,
    keys: Vec<PoolKey>,
    confirm_remove: String,
}

/// `true`/`false`/either as the form's select values.
fn tri(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    }
}

/// The source's base URL as the form shows it: its own, else its preset's.
fn shown_base_url(s: &SourceFile) -> String {
    s.base_url.clone().unwrap_or_else(|| {
        s.preset
            .as_deref()
            .and_then(presets::by_name)
            .map(|p| p.base_url.to_owned())
            .unwrap_or_default()
    })
}

pub(super) fn edit_page(
    cx: &Ctx,
    session: &PanelSession,
    name: &str,
    error: Option<String>,
    status: u16,
) -> Response<Vec<u8>> {
    let manager = cx.manager();
    let Ok((file, version)) = manager.adapter_file(&session.actor, name) else {
        return cx.not_found();
    };
    let Some(view) = manager
        .list(&session.actor)
        .into_iter()
        .find(|a| a.name == name)
    else {
        return cx.not_found();
    };
    let pool = |route: &str| -> Vec<PoolKey> {
        view.provider_keys
            .iter()
            .filter(|k| k.route == route && k.source == 0)
            .map(|k| {
                let (state, class) = key_state(cx, k);
                PoolKey {
                    index: k.key,
                    number: k.key + 1,
                    label: k.label.clone(),
                    state,
                    class,
                }
            })
            .collect()
    };
    let routes: Vec<RouteRow> = file
        .routes
        .iter()
        .zip(&view.routes)
        .enumerate()
        .map(|(index, (r, v))| {
            let when = r.when.clone().unwrap_or_default();
            RouteRow {
                index,
                shown_name: v.name.clone(),
                name: r.name.clone().unwrap_or_default(),
                conditions: v.conditions.clone(),
                protocol: v.protocol,
                source_host: v.source_host.clone(),
                when_model: when.model.unwrap_or_default(),
                when_images: tri(when.images),
                when_min_tokens: when
                    .min_input_tokens
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                when_thinking: tri(when.thinking),
                preset: r.source.preset.clone().unwrap_or_default(),
                base_url: shown_base_url(&r.source),
                source_protocol: r
                    .source
                    .protocol
                    .map(|p| p.name().to_owned())
                    .unwrap_or_default(),
                model: r.source.model.clone(),
                keys: pool(&v.name),
                confirm_remove: cx.lang.fill("confirm_remove_route", &[("name", &v.name)]),
            }
        })
        .collect();
    let saved = super::query_value(&cx.req.query, "saved").is_some() && error.is_none();
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("edit_title", &[("name", name)])),
        ),
        ("name", Value::from(name)),
        ("version", Value::from(version)),
        ("base_url", Value::from(shown_base_url(&file.source))),
        ("model", Value::from(file.source.model.clone())),
        ("source_keys", Value::from_serialize(pool("default"))),
        ("client_keys", Value::from_serialize(&view.keys)),
        ("model_map", Value::from_serialize(&file.source.model_map)),
        (
            "limits",
            Value::from_serialize(file.limits.clone().unwrap_or_default()),
        ),
        ("routes", Value::from_serialize(&routes)),
        (
            "presets",
            Value::from_serialize(cx.manager().presets_for(&session.actor)),
        ),
        ("protocols", Value::from_serialize(PROTOCOLS)),
        ("saved", Value::from(saved)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "edit.html", "adapters", page)
}

/// An index field of the form (`index`); a malformed one names no route.
fn index(f: &Form) -> usize {
    f.get("index").trim().parse().unwrap_or(usize::MAX)
}

fn pool_of(f: &Form) -> PoolOf {
    match f.get("pool") {
        "source" => PoolOf::Source,
        _ => PoolOf::Route(index(f)),
    }
}

/// `yes`/`no`/empty → the condition, or none.
fn condition(f: &Form, field: &str) -> Option<serde_json::Value> {
    match f.get(field) {
        "yes" => Some(true.into()),
        "no" => Some(false.into()),
        _ => None,
    }
}

/// The route the form describes. A preset names the base URL and protocol unless the base
/// URL was replaced by another, as on the create form.
fn route_from(f: &Form, with_key: bool) -> RouteRequest {
    let mut when = serde_json::Map::new();
    if let Some(m) = f.opt("when_model") {
        when.insert("model".into(), m.into());
    }
    if let Some(v) = condition(f, "when_images") {
        when.insert("images".into(), v);
    }
    if let Some(n) = f.opt("when_min_tokens") {
        // A number, else the text itself, refused by the route's checks with the field named.
        let value = n
            .parse::<u64>()
            .map_or_else(|_| n.clone().into(), Into::into);
        when.insert("min_input_tokens".into(), value);
    }
    if let Some(v) = condition(f, "when_thinking") {
        when.insert("thinking".into(), v);
    }
    let preset = Manager::presets()
        .into_iter()
        .find(|p| p.name == f.get("preset"));
    let base_url = f.opt("base_url");
    let protocol = match &preset {
        Some(p) if base_url.as_deref().is_none_or(|u| u == p.base_url) => None,
        _ => f.opt("protocol"),
    };
    RouteRequest {
        name: f.opt("route_name"),
        when: Some(serde_json::Value::Object(when)),
        source: SourceRequest {
            base_url: match &preset {
                Some(p) if base_url.as_deref() == Some(p.base_url) => None,
                _ => base_url,
            },
            preset: preset.map(|p| p.name.to_owned()),
            protocol,
            model: f.get("model").trim().to_owned(),
            api_key: if with_key {
                f.get("api_key").to_owned()
            } else {
                String::new()
            },
            ..SourceRequest::default()
        },
    }
}

/// The change a form asks for.
fn change(f: &Form) -> Option<Change> {
    let edit = match f.get("op") {
        "source" => {
            return Some(Change::Patch(PatchRequest {
                base_url: f.opt("base_url"),
                model: Some(f.get("model").trim().to_owned()),
                ..PatchRequest::default()
            }));
        }
        "key_add" => Edit::AddKey {
            pool: pool_of(f),
            key: f.get("api_key").to_owned(),
            label: f.opt("label"),
        },
        "key_remove" => Edit::RemoveKey {
            pool: pool_of(f),
            index: f.get("key").trim().parse().unwrap_or(usize::MAX),
        },
        "route_add" => Edit::AddRoute(route_from(f, true)),
        "route_change" => Edit::ChangeRoute {
            index: index(f),
            route: route_from(f, false),
        },
        "route_up" | "route_down" => Edit::MoveRoute {
            index: index(f),
            up: f.get("op") == "route_up",
        },
        "route_remove" => Edit::RemoveRoute { index: index(f) },
        "map_add" => Edit::AddMapRule(ModelRuleFile {
            pattern: f.get("match").trim().to_owned(),
            model: f.get("model").trim().to_owned(),
        }),
        "map_remove" => Edit::RemoveMapRule { index: index(f) },
        "limits" => match limits_from(f) {
            Ok(limits) => Edit::SetLimits(limits),
            Err(e) => return Some(Change::Refused(e)),
        },
        _ => return None,
    };
    Some(Change::Edit(edit))
}

enum Change {
    Patch(PatchRequest),
    Edit(Edit),
    Refused(ApiError),
}

/// The limits form: each field a whole number, or empty for none.
fn limits_from(f: &Form) -> Result<AdapterLimitsFile, ApiError> {
    fn number<T: std::str::FromStr>(f: &Form, field: &str) -> Result<Option<T>, ApiError> {
        match f.opt(field) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad(
                    &format!("limits.{field}"),
                    "a whole number, or empty for none",
                )
            }),
        }
    }
    Ok(AdapterLimitsFile {
        requests_per_minute: number(f, "requests_per_minute")?,
        concurrent_requests: number(f, "concurrent_requests")?,
        tokens_per_day: number(f, "tokens_per_day")?,
        tokens_per_month: number(f, "tokens_per_month")?,
        per_key: None,
        searches_per_day: None,
    })
}

pub(super) async fn save(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    let manager = cx.manager();
    let (file, version) = match manager.adapter_file(&session.actor, name) {
        Ok(found) => found,
        Err(e) if e.status == 404 => return cx.not_found(),
        Err(e) => return edit_page(cx, session, name, Some(super::say(cx, &e)), e.status),
    };
    // The page the form came from showed another version: refuse rather than undo a change.
    if f.get("version") != version {
        return edit_page(cx, session, name, Some(cx.t("stale").to_owned()), 409);
    }
    // Issued keys are changed in the keys section, not through a PATCH.
    let key_id = f.get("key_id");
    let key_change = match f.get("op") {
        "client_key_revoke" => Some(
            manager
                .revoke_key(&session.actor, name, key_id, Some(&version))
                .await,
        ),
        "client_key_label" => {
            let request = KeyPatchRequest {
                label: f.opt("label"),
            };
            let changed =
                manager.relabel_key(&session.actor, name, key_id, request, Some(&version));
            Some(changed.await)
        }
        _ => None,
    };
    if let Some(result) = key_change {
        return match result {
            Ok(_) => redirect(&format!("/adapters/{}/edit?saved=1", urlencode(name)), &[]),
            Err(e) => edit_page(cx, session, name, Some(super::say(cx, &e)), e.status),
        };
    }
    let patch = match change(&f) {
        Some(Change::Patch(p)) => Ok(p),
        Some(Change::Edit(e)) => edits::patch_for(&file, e),
        Some(Change::Refused(e)) => Err(e),
        None => Err(ApiError::bad("op", "unknown change")),
    };
    let result = match patch {
        Ok(p) => manager
            .patch(&session.actor, name, p, Some(&version))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => redirect(&format!("/adapters/{}/edit?saved=1", urlencode(name)), &[]),
        Err(e) if e.status == 409 => {
            edit_page(cx, session, name, Some(cx.t("stale").to_owned()), 409)
        }
        Err(e) => edit_page(cx, session, name, Some(super::say(cx, &e)), e.status),
    }
}
