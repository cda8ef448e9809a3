//! The panel's structural edits of an adapter: add or remove a key of a pool, add, change,
//! move or remove a route, add or remove a model-map rule, set the limits. Each is made on the server from the adapter's file as written (the
//! keys never leave the server) and becomes a [`PatchRequest`] carrying the whole new list, so
//! it passes exactly the checks of the management API's PATCH.

use super::manage::{ApiError, PatchRequest, RouteRequest, SourceRequest};
use crate::config::adapter::{
    AdapterFile, AdapterLimitsFile, ModelRuleFile, PoolKeyFile, RouteFile, SourceFile,
};

/// Which source's pool an edit changes: the default source's or a route's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolOf {
    Source,
    Route(usize),
}

#[derive(Debug, Clone)]
pub enum Edit {
    AddKey {
        pool: PoolOf,
        key: String,
        label: Option<String>,
    },
    RemoveKey {
        pool: PoolOf,
        index: usize,
    },
    AddRoute(RouteRequest),
    /// The route's name, conditions and where it goes; its keys, fallbacks, options and
    /// timeouts stay as they were.
    ChangeRoute {
        index: usize,
        route: RouteRequest,
    },
    MoveRoute {
        index: usize,
        up: bool,
    },
    RemoveRoute {
        index: usize,
    },
    /// A `model_map` rule of the default source, added last or removed.
    AddMapRule(ModelRuleFile),
    RemoveMapRule {
        index: usize,
    },
    /// The adapter's limits; every field `None` removes them.
    SetLimits(AdapterLimitsFile),
}

/// A source's keys as a pool (one `api_key` is a pool of one).
pub fn pool_of(s: &SourceFile) -> Vec<PoolKeyFile> {
    if !s.api_keys.is_empty() {
        s.api_keys.clone()
    } else if s.api_key.is_empty() {
        Vec::new()
    } else {
        vec![PoolKeyFile::Plain(s.api_key.clone())]
    }
}

fn route_request(r: &RouteFile) -> RouteRequest {
    RouteRequest {
        name: r.name.clone(),
        when: r.when.as_ref().and_then(|w| serde_json::to_value(w).ok()),
        source: SourceRequest::from(&r.source),
    }
}

fn no_route(index: usize) -> ApiError {
    ApiError::bad(&format!("routes[{index}]"), "no such route").coded("stale")
}

/// The new pool after `edit` (an add or a remove) on `keys`; `field` names the pool.
fn edited_pool(
    keys: &[PoolKeyFile],
    edit: &Edit,
    field: &str,
) -> Result<Vec<PoolKeyFile>, ApiError> {
    let mut keys = keys.to_vec();
    match edit {
        Edit::AddKey { key, label, .. } => keys.push(match label {
            Some(label) => PoolKeyFile::Labeled {
                key: key.clone(),
                label: Some(label.clone()),
            },
            None => PoolKeyFile::Plain(key.clone()),
        }),
        Edit::RemoveKey { index, .. } => {
            if *index >= keys.len() {
                return Err(
                    ApiError::bad(&format!("{field}[{index}]"), "no such key").coded("stale")
                );
            }
            if keys.len() == 1 {
                return Err(ApiError::bad(
                    &format!("{field}[{index}]"),
                    "the only key of its source; add another before removing this one",
                )
                .coded("only_key"));
            }
            keys.remove(*index);
        }
        _ => {}
    }
    Ok(keys)
}

/// The PATCH that makes `edit` on `file`.
pub fn patch_for(file: &AdapterFile, edit: Edit) -> Result<PatchRequest, ApiError> {
    let mut routes: Vec<RouteRequest> = file.routes.iter().map(route_request).collect();
    let with_routes = |routes: Vec<RouteRequest>| PatchRequest {
        routes: Some(Some(routes)),
        ..PatchRequest::default()
    };
    match edit {
        Edit::AddKey { pool, .. } | Edit::RemoveKey { pool, .. } => match pool {
            PoolOf::Source => Ok(PatchRequest {
                api_keys: Some(edited_pool(
                    &pool_of(&file.source),
                    &edit,
                    "source.api_keys",
                )?),
                ..PatchRequest::default()
            }),
            PoolOf::Route(i) => {
                let route = file.routes.get(i).ok_or_else(|| no_route(i))?;
                let field = format!("routes[{i}].source.api_keys");
                let keys = edited_pool(&pool_of(&route.source), &edit, &field)?;
                routes[i].source.api_key = String::new();
                routes[i].source.api_keys = Some(keys);
                Ok(with_routes(routes))
            }
        },
        Edit::AddRoute(route) => {
            routes.push(route);
            Ok(with_routes(routes))
        }
        Edit::ChangeRoute { index, route } => {
            let old = routes.get_mut(index).ok_or_else(|| no_route(index))?;
            old.name = route.name;
            old.when = route.when;
            old.source.base_url = route.source.base_url;
            old.source.preset = route.source.preset;
            old.source.protocol = route.source.protocol;
            old.source.model = route.source.model;
            Ok(with_routes(routes))
        }
        Edit::MoveRoute { index, up } => {
            let other = if up {
                index.checked_sub(1)
            } else {
                Some(index + 1)
            };
            match other {
                Some(other) if index < routes.len() && other < routes.len() => {
                    routes.swap(index, other);
                    Ok(with_routes(routes))
                }
                _ => Err(no_route(index)),
            }
        }
        Edit::AddMapRule(rule) => {
            let mut map = file.source.model_map.clone();
            map.push(rule);
            Ok(PatchRequest {
                model_map: Some(map),
                ..PatchRequest::default()
            })
        }
        Edit::RemoveMapRule { index } => {
            let mut map = file.source.model_map.clone();
            if index >= map.len() {
                return Err(
                    ApiError::bad(&format!("model_map[{index}]"), "no such rule").coded("stale"),
                );
            }
            map.remove(index);
            Ok(PatchRequest {
                model_map: Some(map),
                ..PatchRequest::default()
            })
        }
        Edit::SetLimits(limits) => {
            let none = limits.requests_per_minute.is_none()
                && limits.concurrent_requests.is_none()
                && limits.tokens_per_day.is_none()
                && limits.tokens_per_month.is_none();
            // What the form does not show stays as it was.
            let kept = file.limits.clone().unwrap_or_default();
            let searches_per_day = limits.searches_per_day.or(kept.searches_per_day);
            let none = none && searches_per_day.is_none();
            Ok(PatchRequest {
                limits: Some((!none).then_some(AdapterLimitsFile {
                    per_key: kept.per_key,
                    searches_per_day,
                    ..limits
                })),
                ..PatchRequest::default()
            })
        }
        Edit::RemoveRoute { index } => {
            if index >= routes.len() {
                return Err(no_route(index));
            }
            routes.remove(index);
            Ok(with_routes(routes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> AdapterFile {
        serde_yaml_ng::from_str(
            r#"
source: { base_url: "https://a.example/v1", api_key: sk-one, model: m }
routes:
  - name: cheap
    when: { model: "claude-*haiku*" }
    source: { base_url: "https://b.example/v1", api_keys: [sk-b1, { key: sk-b2, label: team }], model: flash,
              timeouts: { connect: 3s }, fallbacks: [{ base_url: "https://c.example/v1", api_key: sk-c }] }
  - when: { images: true }
    source: { preset: dashscope, api_key: sk-v, model: vl }
"#,
        )
        .unwrap()
    }

    fn names(p: &PatchRequest) -> Vec<String> {
        let routes = p.routes.clone().flatten().unwrap();
        routes.iter().map(|r| r.source.model.clone()).collect()
    }

    #[test]
    fn a_key_joins_and_leaves_a_pool_and_the_last_one_stays() {
        let f = file();
        let add = Edit::AddKey {
            pool: PoolOf::Source,
            key: "sk-two".into(),
            label: Some("b".into()),
        };
        let keys = patch_for(&f, add).unwrap().api_keys.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].parts(), ("sk-one", None));
        assert_eq!(keys[1].parts(), ("sk-two", Some("b")));
        let last = patch_for(
            &f,
            Edit::RemoveKey {
                pool: PoolOf::Source,
                index: 0,
            },
        )
        .unwrap_err();
        assert!(
            last.message.starts_with("source.api_keys[0]"),
            "{}",
            last.message
        );

        let p = patch_for(
            &f,
            Edit::RemoveKey {
                pool: PoolOf::Route(0),
                index: 0,
            },
        )
        .unwrap();
        let routes = p.routes.flatten().unwrap();
        let keys = routes[0].source.api_keys.clone().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].parts(), ("sk-b2", Some("team")));
        // What the edit did not touch is sent back as it was.
        assert_eq!(routes[0].source.fallbacks.len(), 1);
        assert!(routes[0].source.timeouts.is_some());
        assert_eq!(routes[1].source.preset.as_deref(), Some("dashscope"));
        let missing = patch_for(
            &f,
            Edit::RemoveKey {
                pool: PoolOf::Route(5),
                index: 0,
            },
        )
        .unwrap_err();
        assert!(missing.message.starts_with("routes[5]"));
    }

    #[test]
    fn routes_move_change_and_go() {
        let f = file();
        assert_eq!(
            names(&patch_for(&f, Edit::MoveRoute { index: 1, up: true }).unwrap()),
            ["vl", "flash"]
        );
        assert_eq!(
            names(
                &patch_for(
                    &f,
                    Edit::MoveRoute {
                        index: 0,
                        up: false
                    }
                )
                .unwrap()
            ),
            ["vl", "flash"]
        );
        assert!(patch_for(&f, Edit::MoveRoute { index: 0, up: true }).is_err());
        assert!(
            patch_for(
                &f,
                Edit::MoveRoute {
                    index: 1,
                    up: false
                }
            )
            .is_err()
        );
        assert_eq!(
            names(&patch_for(&f, Edit::RemoveRoute { index: 0 }).unwrap()),
            ["vl"]
        );
        assert!(patch_for(&f, Edit::RemoveRoute { index: 2 }).is_err());

        let mut new = RouteRequest::default();
        new.name = Some("renamed".into());
        new.when = Some(serde_json::json!({"thinking": true}));
        new.source.base_url = Some("https://d.example/v1".into());
        new.source.model = "thinker".into();
        let p = patch_for(
            &f,
            Edit::ChangeRoute {
                index: 0,
                route: new.clone(),
            },
        )
        .unwrap();
        let r = &p.routes.flatten().unwrap()[0];
        assert_eq!(r.name.as_deref(), Some("renamed"));
        assert_eq!(r.source.model, "thinker");
        assert_eq!(
            r.source.api_keys.as_ref().unwrap().len(),
            2,
            "the keys stay"
        );
        assert_eq!(r.source.fallbacks.len(), 1);

        let p = patch_for(&f, Edit::AddRoute(new)).unwrap();
        assert_eq!(names(&p), ["flash", "vl", "thinker"]);
    }
}
